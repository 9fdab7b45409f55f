"""Property-based fuzzing of vendor-API bodies against a real cloud, on both backends.

For any action and any JSON body: the answer is HTTP 200 with a well-formed envelope,
never an internal error or a stack trace, and a refused request leaves every table as it
was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iotvideo.cloud.vendor import register_all
from iotvideo.cloud.vendor.params import Params
from tests.cloud.official import call, client
from tests.support import Cloud, error_code, signed_post, snapshot


class _Collect:
    """Stands in for VendorApi to list every action and its parameter model."""

    def __init__(self) -> None:
        self.actions: dict[str, type[Params]] = {}

    def add(self, name: str, params: type[Params], handler: object, *, writes: bool = True) -> None:
        self.actions[name] = params


_collected = _Collect()
register_all(_collected)  # type: ignore[arg-type]
ACTIONS = _collected.actions


@dataclass(frozen=True)
class World:
    key: tuple[str, str]
    products: list[str]
    tids: list[str]
    users: list[str]
    tokens: list[str]


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    key = cloud.new_key()
    api = client(cloud, key)
    pid = call(api, "CreateProduct", ProductModel="f", ProductName="fuzz", ProductDescription="f")
    product = pid.Data.ProductId
    tids = [d.Tid for d in call(api, "CreateDevices", ProductId=product, Number=2).Data]
    users = [call(api, "CreateAppUsr", CunionId=c).AccessId for c in ("u1", "u2")]
    call(api, "CreateBinding", AccessId=users[0], Tid=tids[0], Role="owner")
    token = call(api, "CreateUsrToken", AccessId=users[0], UniqueId="x", TtlMinutes=60).AccessToken
    return World(
        key, [product, "NOSUCHPRODUCT"], [*tids, "NOSUCHTID"], [*users, "1"], [token, "usr_x"]
    )


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


_word = st.text(st.characters(categories=["L", "Nd"]), min_size=1, max_size=12)


def _plausible(name: str, w: World) -> st.SearchStrategy[Any]:
    """Values that are often valid, so that accepted requests are fuzzed too."""
    ids = {
        "ProductId": st.sampled_from(w.products),
        "Tid": st.sampled_from(w.tids),
        "AccessId": st.sampled_from(w.users),
        "OldAccessToken": st.sampled_from(w.tokens),
        "Tids": st.lists(st.sampled_from(w.tids), min_size=0, max_size=3),
        "CunionIds": st.lists(_word, min_size=1, max_size=3),
        "Role": st.sampled_from(["owner", "guest", "admin"]),
        "Mobile": st.from_regex(r"\A\+?[0-9]{0,12}\Z"),
        "NamePrefix": st.from_regex(r"\A[A-Za-z0-9]{0,10}\Z"),
        "ProductRegion": st.sampled_from(["Europe", "America", "Moon"]),
        "BindToken": st.none(),
    }
    if name in ids:
        return ids[name]
    if name in {"Limit", "Offset", "Number", "TtlMinutes", "ProductCate", "StartTime", "EndTime"}:
        return st.integers(min_value=-1, max_value=3) | st.integers(1, 3)
    if name in {"ReturnModel", "ForceBind"}:
        return st.booleans()
    if name == "Features":
        return st.lists(_word, max_size=3)
    return st.one_of(_word, _word, st.text(max_size=12))


_DESTRUCTIVE = {"DeleteAppUsr", "DeleteDevice", "DeleteProduct", "DeleteBinding"}


@st.composite
def requests(draw: st.DrawFn, world: World) -> tuple[str, dict[str, Any]]:
    """Mostly complete, plausible bodies with one field spoiled; sometimes plain junk.

    Destructive actions only get junk, so that the world the plausible bodies refer to
    survives the whole run.
    """
    action = draw(st.sampled_from(sorted(ACTIONS)))
    model = ACTIONS[action]
    mode = draw(st.sampled_from(["full", "full", "dropped", "spoiled", "junk"]))
    if action in _DESTRUCTIVE or mode == "junk":
        fields = list(model.model_fields)  # none for DescribeOsList
        chosen = draw(st.lists(st.sampled_from(fields), unique=True)) if fields else []
        return action, {f: draw(st.one_of(_plausible(f, world), _json)) for f in chosen}
    body = {
        f: draw(_plausible(f, world))
        for f, info in model.model_fields.items()
        if info.is_required() or draw(st.booleans())
    }
    if body and mode != "full":
        field = draw(st.sampled_from(sorted(body)))
        if mode == "dropped":
            del body[field]
        else:
            body[field] = draw(_json)
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(min_size=1, max_size=8))] = draw(_json)
    return action, body


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_body_gets_a_clean_answer(cloud: Cloud, world: World, data: st.DataObject) -> None:
    action, body = data.draw(requests(world))
    before = snapshot(cloud.db)
    response = signed_post(cloud, world.key, action, body)
    code = error_code(response)
    event(f"{action}: {code or 'accepted'}")
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert code != "InternalError", response.text
    if code is not None:
        assert snapshot(cloud.db) == before, (
            f"{action} {body} was refused with {code} but changed data"
        )
