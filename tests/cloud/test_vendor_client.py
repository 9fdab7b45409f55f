"""The official tencentcloud-sdk-python-iotvideo client drives every vendor action.

Each test runs against a real cloud process on SQLite and on PostgreSQL, with a vendor key
of its own, so tests never see each other's data.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from iotvideo.cloud.vendor.billing import BALANCE
from iotvideo.protocol.certificate import DeviceCertificate
from tests.cloud.official import call, client, refused
from tests.support import Cloud, snapshot


@pytest.fixture
def api(cloud: Cloud) -> Any:
    return client(cloud, cloud.new_key())


def _product(api: Any, **extra: Any) -> str:
    fields = {"ProductModel": "ipc", "ProductName": "cam_x", "ProductDescription": "a camera"}
    return str(call(api, "CreateProduct", **(fields | extra)).Data.ProductId)


def _devices(api: Any, product_id: str, n: int = 2, prefix: str = "cam") -> list[str]:
    out = call(api, "CreateDevices", ProductId=product_id, Number=n, NamePrefix=prefix)
    return [d.Tid for d in out.Data]


def _user(api: Any, cunion: str) -> str:
    return str(call(api, "CreateAppUsr", CunionId=cunion).AccessId)


# Products


def test_create_and_describe_product(api: Any) -> None:
    before = int(time.time())
    created = call(
        api,
        "CreateProduct",
        ProductModel="com.example.cam",
        ProductName="Garden_cam_2",
        ProductDescription="outdoor camera",
        Features=["ypsxth", "spdxth"],
        ProductCate=1,
        ProductRegion="Europe",
        Os="Linux",
    ).Data
    assert created.ProductName == "Garden_cam_2"
    assert created.FuncCode == ["ypsxth", "spdxth"]
    assert created.IotModelRevision == 0 and created.SecretKey
    assert before - 1 <= created.CreateTime <= time.time() + 1

    got = call(api, "DescribeProduct", ProductId=created.ProductId).Data
    assert (got.ProductId, got.ProductModel, got.ProductCate, got.ProductRegion, got.Os) == (
        created.ProductId,
        "com.example.cam",
        1,
        "Europe",
        "Linux",
    )
    assert got.Features == ["ypsxth", "spdxth"]


def test_describe_products_pages_and_filters(api: Any) -> None:
    ids = [_product(api, ProductModel=m) for m in ("a", "b", "a")]
    first = call(api, "DescribeProducts", Limit=2, Offset=0)
    second = call(api, "DescribeProducts", Limit=2, Offset=2)
    assert first.TotalCount == second.TotalCount == 3
    assert [p.ProductId for p in first.Data + second.Data] == ids
    only_a = call(api, "DescribeProducts", Limit=10, Offset=0, ProductModel="a")
    assert only_a.TotalCount == 2 and {p.ProductId for p in only_a.Data} == {ids[0], ids[2]}
    future = call(api, "DescribeProducts", Limit=10, Offset=0, StartTime=int(time.time()) + 3600)
    assert future.TotalCount == 0 and future.Data == []


def test_product_refusals(api: Any, cloud: Cloud) -> None:
    base = {"ProductModel": "ipc", "ProductName": "ok", "ProductDescription": "fine"}
    before = snapshot(cloud.db)
    refused(
        "InvalidParameterValue", call, api, "CreateProduct", **(base | {"ProductName": "x" * 33})
    )
    refused("InvalidParameterValue", call, api, "CreateProduct", **(base | {"ProductName": "a b"}))
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateProduct",
        **(base | {"ProductDescription": "a_b"}),
    )
    refused("InvalidParameterValue", call, api, "CreateProduct", **(base | {"ProductCate": 2}))
    refused(
        "InvalidParameterValue", call, api, "CreateProduct", **(base | {"ProductRegion": "Mars"})
    )
    refused("MissingParameter", call, api, "CreateProduct", ProductModel="ipc", ProductName="x")
    refused("InvalidParameterValue", call, api, "DescribeProducts", Limit=0, Offset=0)
    refused("InvalidParameterValue", call, api, "DescribeProducts", Limit=101, Offset=0)
    refused("InvalidParameterValue", call, api, "DescribeProducts", Limit=1, Offset=-1)
    refused("ResourceNotFound", call, api, "DescribeProduct", ProductId="NOSUCHPROD")
    refused("ResourceNotFound", call, api, "DeleteProduct", ProductId="NOSUCHPROD")
    assert snapshot(cloud.db) == before


def test_delete_product_refused_while_it_has_devices(api: Any) -> None:
    pid = _product(api)
    tids = _devices(api, pid, 1)
    refused("ResourceInUse", call, api, "DeleteProduct", ProductId=pid)
    assert call(api, "DescribeProduct", ProductId=pid).Data.ProductId == pid
    call(api, "DeleteDevice", Tids=tids)
    call(api, "DeleteProduct", ProductId=pid)
    refused("ResourceNotFound", call, api, "DescribeProduct", ProductId=pid)


def test_modify_product_changes_only_what_it_is_given(api: Any, cloud: Cloud) -> None:
    pid = _product(api, ChipManufactureId="acme", ChipId="a1")
    call(api, "ModifyProduct", ProductId=pid, ProductName="doorbell_2")
    got = call(api, "DescribeProduct", ProductId=pid).Data
    assert (got.ProductName, got.ProductDescription) == ("doorbell_2", "a camera")
    assert (got.ChipManufactureId, got.ChipId) == ("acme", "a1")
    call(api, "ModifyProduct", ProductId=pid, ProductDescription="new", ChipId="b2")
    got = call(api, "DescribeProduct", ProductId=pid).Data
    assert (got.ProductName, got.ProductDescription, got.ChipId) == ("doorbell_2", "new", "b2")
    before = snapshot(cloud.db)
    refused("ResourceNotFound", call, api, "ModifyProduct", ProductId="NOSUCHPROD", ChipId="x")
    refused("InvalidParameterValue", call, api, "ModifyProduct", ProductId=pid, ProductName="a b")
    refused(
        "InvalidParameterValue", call, api, "ModifyProduct", ProductId=pid, ProductDescription="%"
    )
    refused("MissingParameter", call, api, "ModifyProduct", ProductName="x")
    assert snapshot(cloud.db) == before


def test_os_list_and_an_account_that_never_runs_out(api: Any) -> None:
    """No billing here: every account reads as normal, with the largest balance and no
    recharges, the same on every call (and every instance: nothing is per process)."""
    systems = call(api, "DescribeOsList").Data
    assert {c.ChipId for c in systems.Linux} == {"x86_64", "aarch64", "armv7l"}
    assert systems.Android == [] and systems.LiteOs == []
    for kind in (1, 2):
        balance = call(api, "DescribeAccountBalance", AccountType=kind)
        assert (balance.AccountType, balance.Balance, balance.State) == (kind, BALANCE, 1)
        assert balance.LastUpdateTime > 0
        again = call(api, "DescribeAccountBalance", AccountType=kind)
        assert again.LastUpdateTime == balance.LastUpdateTime
        records = call(api, "DescribeRechargeRecords", AccountType=kind, Offset=0, Limit=10)
        assert (records.AccountType, records.Records) == (kind, [])
    refused("InvalidParameterValue", call, api, "DescribeAccountBalance", AccountType=3)
    refused("MissingParameter", call, api, "DescribeAccountBalance")
    refused("InvalidParameterValue", call, api, "DescribeRechargeRecords", AccountType=1, Limit=0)


# Devices


def test_create_devices_returns_a_certificate_once(api: Any) -> None:
    pid = _product(api)
    out = call(api, "CreateDevices", ProductId=pid, Number=3, NamePrefix="door")
    assert len(out.Data) == 3 and len({d.Tid for d in out.Data}) == 3
    keys = set()
    for item in out.Data:
        cert = DeviceCertificate.parse(item.Certificate)
        assert (cert.tid, cert.product_id) == (item.Tid, pid)
        keys.add(cert.private_key)
    assert len(keys) == 3, "each device has its own key pair"
    described = call(api, "DescribeDevice", Tid=out.Data[0].Tid).Data
    assert described.Certificate == "", "the private key is not kept by the cloud"
    assert described.ProductId == pid and described.DeviceName == "door000001"
    assert (described.Disabled, described.Online, described.ActiveTime) == (False, 0, 0)


def test_describe_devices_pages_and_filters(api: Any) -> None:
    pid = _product(api)
    cams = _devices(api, pid, 3, "cam")
    bells = _devices(api, pid, 2, "bell")
    page1 = call(api, "DescribeDevices", ProductId=pid, ReturnModel=True, Limit=4, Offset=0)
    page2 = call(api, "DescribeDevices", ProductId=pid, ReturnModel=True, Limit=4, Offset=4)
    assert page1.TotalCount == page2.TotalCount == 5
    assert len(page1.Data) == 4 and len(page2.Data) == 1
    assert {d.Tid for d in page1.Data + page2.Data} == set(cams + bells)
    by_name = call(
        api,
        "DescribeDevices",
        ProductId=pid,
        ReturnModel=False,
        Limit=10,
        Offset=0,
        DeviceName="bell",
    )
    assert by_name.TotalCount == 2 and {d.Tid for d in by_name.Data} == set(bells)
    assert all(d.LastUpdateTime == 0 for d in by_name.Data), "ReturnModel=false gives zero values"
    refused(
        "ResourceNotFound",
        call,
        api,
        "DescribeDevices",
        ProductId="NOSUCHPROD",
        ReturnModel=True,
        Limit=10,
        Offset=0,
    )


def test_create_devices_limits(api: Any, cloud: Cloud) -> None:
    pid = _product(api)
    before = snapshot(cloud.db)
    refused("InvalidParameterValue", call, api, "CreateDevices", ProductId=pid, Number=0)
    refused("InvalidParameterValue", call, api, "CreateDevices", ProductId=pid, Number=101)
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateDevices",
        ProductId=pid,
        Number=1,
        NamePrefix="x" * 11,
    )
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateDevices",
        ProductId=pid,
        Number=1,
        NamePrefix="a-b",
    )
    refused("ResourceNotFound", call, api, "CreateDevices", ProductId="NOSUCHPROD", Number=1)
    assert snapshot(cloud.db) == before
    assert len(call(api, "CreateDevices", ProductId=pid, Number=100).Data) == 100


def test_disable_run_delete_devices(api: Any, cloud: Cloud) -> None:
    pid = _product(api)
    a, b = _devices(api, pid, 2)
    call(api, "DisableDevice", Tids=[a])
    assert call(api, "DescribeDevice", Tid=a).Data.Disabled is True
    assert call(api, "DescribeDevice", Tid=b).Data.Disabled is False
    before = snapshot(cloud.db)
    refused("ResourceNotFound", call, api, "DisableDevice", Tids=[b, "NOSUCHTID"])
    refused("ResourceNotFound", call, api, "DeleteDevice", Tids=[a, "NOSUCHTID"])
    refused("InvalidParameterValue", call, api, "RunDevice", Tids=[])
    assert snapshot(cloud.db) == before, "a refused batch changes none of its devices"
    call(api, "RunDevice", Tids=[a])
    assert call(api, "DescribeDevice", Tid=a).Data.Disabled is False
    call(api, "DeleteDevice", Tids=[a, a])
    refused("ResourceNotFound", call, api, "DescribeDevice", Tid=a)
    assert call(api, "DescribeDevice", Tid=b).Data.Tid == b


def test_modify_device_sets_the_users_nick(api: Any) -> None:
    tid = _devices(api, _product(api), 1)[0]
    user = _user(api, "nick-user")
    refused("ResourceNotFound", call, api, "ModifyDevice", Tid=tid, AccessId=user, Nick="Hall")
    call(api, "CreateBinding", AccessId=user, Tid=tid, Role="owner")
    call(api, "ModifyDevice", Tid=tid, AccessId=user, Nick="Hall")
    assert call(api, "DescribeBindDev", AccessId=user).Data[0].DeviceName == "Hall"
    refused(
        "InvalidParameterValue", call, api, "ModifyDevice", Tid=tid, AccessId=user, Nick="n" * 65
    )


# Users


def test_create_app_usr_is_idempotent_per_cunion_id(api: Any) -> None:
    first = call(api, "CreateAppUsr", CunionId="alice@example.com", Mobile="+8613800000000")
    again = call(api, "CreateAppUsr", CunionId="alice@example.com")
    other = call(api, "CreateAppUsr", CunionId="bob@example.com")
    assert first.NewRegist is True and again.NewRegist is False
    assert first.AccessId == again.AccessId != other.AccessId
    assert first.CunionId == "alice@example.com"
    status = call(api, "DescribeRegistrationStatus", CunionIds=["bob@example.com", "carol"]).Data
    assert [(s.CunionId, s.IsRegisted) for s in status] == [
        ("bob@example.com", True),
        ("carol", False),
    ]
    refused("InvalidParameterValue", call, api, "DescribeRegistrationStatus", CunionIds=[])
    refused("InvalidParameterValue", call, api, "CreateAppUsr", CunionId="")


def test_delete_app_usr_removes_bindings_and_tokens(api: Any) -> None:
    tid = _devices(api, _product(api), 1)[0]
    owner = _user(api, "owner")
    leaving = _user(api, "leaving")
    call(api, "CreateBinding", AccessId=owner, Tid=tid, Role="owner")
    call(api, "CreateBinding", AccessId=leaving, Tid=tid, Role="guest")
    token = call(
        api, "CreateUsrToken", AccessId=leaving, UniqueId="phone", TtlMinutes=60
    ).AccessToken
    call(api, "DeleteAppUsr", AccessId=leaving)
    users = call(api, "DescribeBindUsr", Tid=tid, AccessId=owner).Data
    assert [(u.AccessId, u.Role) for u in users] == [(owner, "owner")]
    refused("ResourceNotFound", call, api, "DescribeBindDev", AccessId=leaving)
    refused(
        "ResourceNotFound",
        call,
        api,
        "CreateUsrToken",
        AccessId=leaving,
        UniqueId="phone",
        TtlMinutes=60,
        OldAccessToken=token,
    )
    assert call(api, "CreateAppUsr", CunionId="leaving").NewRegist is True
    refused("ResourceNotFound", call, api, "DeleteAppUsr", AccessId=leaving)


# Tokens


def test_usr_token_terminals_and_renewal(api: Any) -> None:
    user = _user(api, "tok")
    other = _user(api, "tok2")
    now = int(time.time())
    phone = call(api, "CreateUsrToken", AccessId=user, UniqueId="phone", TtlMinutes=10)
    again = call(api, "CreateUsrToken", AccessId=user, UniqueId="phone", TtlMinutes=10)
    tablet = call(api, "CreateUsrToken", AccessId=user, UniqueId="tablet", TtlMinutes=10)
    assert phone.AccessId == user
    assert phone.TerminalId == again.TerminalId != tablet.TerminalId
    assert phone.AccessToken != again.AccessToken
    assert now + 600 - 2 <= phone.ExpireTime <= now + 600 + 2

    renewed = call(
        api,
        "CreateUsrToken",
        AccessId=user,
        UniqueId="phone",
        TtlMinutes=5,
        OldAccessToken=phone.AccessToken,
    )
    assert renewed.AccessToken not in (phone.AccessToken, again.AccessToken)
    # The renewed-from token is revoked: it cannot be renewed a second time.
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateUsrToken",
        AccessId=user,
        UniqueId="phone",
        TtlMinutes=5,
        OldAccessToken=phone.AccessToken,
    )
    refused(
        "UnauthorizedOperation",
        call,
        api,
        "CreateUsrToken",
        AccessId=other,
        UniqueId="phone",
        TtlMinutes=5,
        OldAccessToken=renewed.AccessToken,
    )
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateUsrToken",
        AccessId=user,
        UniqueId="p",
        TtlMinutes=0,
    )
    refused(
        "ResourceNotFound", call, api, "CreateUsrToken", AccessId="42", UniqueId="p", TtlMinutes=5
    )


def test_dev_tokens(api: Any, cloud: Cloud) -> None:
    tids = _devices(api, _product(api), 3)
    user = _user(api, "visitor")
    out = call(api, "CreateDevToken", AccessId=user, Tids=tids, TtlMinutes=15).Data
    assert [d.Tid for d in out] == tids
    assert all(d.AccessId == user and d.AccessToken for d in out)
    assert len({d.AccessToken for d in out}) == 3
    before = snapshot(cloud.db)
    refused(
        "InvalidParameterValue", call, api, "CreateDevToken", AccessId=user, Tids=[], TtlMinutes=5
    )
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateDevToken",
        AccessId=user,
        Tids=[tids[0]] * 101,
        TtlMinutes=5,
    )
    refused(
        "ResourceNotFound",
        call,
        api,
        "CreateDevToken",
        AccessId=user,
        Tids=[tids[0], "X"],
        TtlMinutes=5,
    )
    assert snapshot(cloud.db) == before


def test_anonymous_access_tokens(api: Any) -> None:
    tid = _devices(api, _product(api), 1)[0]
    now = int(time.time())
    made = call(api, "CreateAnonymousAccessToken", TtlMinutes=1440, Tid=tid)
    assert made.AccessId and made.AccessToken
    assert abs(made.ExpireTime - (now + 86400)) <= 2
    renewed = call(
        api, "CreateAnonymousAccessToken", TtlMinutes=30, OldAccessToken=made.AccessToken
    )
    assert renewed.AccessId == made.AccessId and renewed.AccessToken != made.AccessToken
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateAnonymousAccessToken",
        TtlMinutes=30,
        OldAccessToken=made.AccessToken,
    )
    refused(
        "InvalidParameterValue", call, api, "CreateAnonymousAccessToken", TtlMinutes=1441, Tid=tid
    )
    refused("MissingParameter", call, api, "CreateAnonymousAccessToken", TtlMinutes=10)
    refused("ResourceNotFound", call, api, "CreateAnonymousAccessToken", TtlMinutes=10, Tid="NOPE")
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateBinding",
        AccessId=made.AccessId,
        Tid=tid,
        Role="owner",
    )


# Bindings


def test_one_owner_many_guests(api: Any, cloud: Cloud) -> None:
    tid = _devices(api, _product(api), 1)[0]
    alice, bob, carol = (_user(api, n) for n in ("alice", "bob", "carol"))
    token = call(
        api, "CreateBinding", AccessId=alice, Tid=tid, Role="owner", Nick="Porch"
    ).AccessToken
    assert token
    call(api, "CreateBinding", AccessId=carol, Tid=tid, Role="guest")

    before = snapshot(cloud.db)
    refused("ResourceInUse", call, api, "CreateBinding", AccessId=bob, Tid=tid, Role="owner")
    refused(
        "ResourceInUse",
        call,
        api,
        "CreateBinding",
        AccessId=bob,
        Tid=tid,
        Role="owner",
        ForceBind=False,
    )
    assert snapshot(cloud.db) == before, "a refused bind changes nothing"

    users = call(api, "DescribeBindUsr", Tid=tid, AccessId=alice).Data
    assert sorted((u.AccessId, u.Role) for u in users) == sorted(
        [(alice, "owner"), (carol, "guest")]
    )
    devs = call(api, "DescribeBindDev", AccessId=alice).Data
    assert [(d.Tid, d.DeviceName, d.DeviceModel, d.Role) for d in devs] == [
        (tid, "Porch", "ipc", "owner")
    ]
    refused("UnauthorizedOperation", call, api, "DescribeBindUsr", Tid=tid, AccessId=carol)
    # Binding the same way again is idempotent and hands out a fresh token.
    assert call(api, "CreateBinding", AccessId=alice, Tid=tid, Role="owner").AccessToken != token


def test_force_bind_replaces_the_owner_and_revokes_its_tokens(api: Any, cloud: Cloud) -> None:
    tid = _devices(api, _product(api), 1)[0]
    alice, bob = _user(api, "old-owner"), _user(api, "new-owner")
    call(api, "CreateBinding", AccessId=alice, Tid=tid, Role="owner")
    call(api, "CreateDevToken", AccessId=alice, Tids=[tid], TtlMinutes=60)
    call(api, "CreateBinding", AccessId=bob, Tid=tid, Role="owner", ForceBind=True)
    users = call(api, "DescribeBindUsr", Tid=tid, AccessId=bob).Data
    assert [(u.AccessId, u.Role) for u in users] == [(bob, "owner")]
    assert call(api, "DescribeBindDev", AccessId=alice).Data == []
    tokens = snapshot(cloud.db)["access_tokens"]
    alices = [t for t in tokens if t[1] == alice and t[3] == tid]
    assert len(alices) == 2 and all(t[-1] is not None for t in alices), "all revoked"
    bobs = [t for t in tokens if t[1] == bob and t[3] == tid]
    assert len(bobs) == 1 and bobs[0][-1] is None


def test_delete_binding(api: Any, cloud: Cloud) -> None:
    tid = _devices(api, _product(api), 1)[0]
    owner, guest = _user(api, "o"), _user(api, "g")
    call(api, "CreateBinding", AccessId=owner, Tid=tid, Role="owner")
    call(api, "CreateBinding", AccessId=guest, Tid=tid, Role="guest")
    before = snapshot(cloud.db)
    refused("ResourceNotFound", call, api, "DeleteBinding", AccessId=guest, Tid=tid, Role="owner")
    refused(
        "InvalidParameterValue", call, api, "DeleteBinding", AccessId=guest, Tid=tid, Role="admin"
    )
    refused(
        "InvalidParameterValue", call, api, "CreateBinding", AccessId=guest, Tid=tid, Role="admin"
    )
    refused(
        "InvalidParameterValue",
        call,
        api,
        "CreateBinding",
        AccessId=guest,
        Tid=tid,
        Role="guest",
        BindToken="not-a-token",
    )
    assert snapshot(cloud.db) == before
    call(api, "DeleteBinding", AccessId=guest, Tid=tid, Role="guest")
    assert call(api, "DescribeBindDev", AccessId=guest).Data == []
    assert [u.AccessId for u in call(api, "DescribeBindUsr", Tid=tid, AccessId=owner).Data] == [
        owner
    ]


# Vendors, authentication and transport


def test_each_key_sees_only_its_vendor(cloud: Cloud) -> None:
    mine, theirs = client(cloud, cloud.new_key()), client(cloud, cloud.new_key())
    pid = _product(mine)
    tid = _devices(mine, pid, 1)[0]
    user = _user(mine, "shared-name")
    assert call(theirs, "DescribeProducts", Limit=10, Offset=0).TotalCount == 0
    refused("ResourceNotFound", call, theirs, "DescribeProduct", ProductId=pid)
    refused("ResourceNotFound", call, theirs, "DescribeDevice", Tid=tid)
    refused("ResourceNotFound", call, theirs, "DeleteDevice", Tids=[tid])
    refused("ResourceNotFound", call, theirs, "DescribeBindDev", AccessId=user)
    their_user = _user(theirs, "shared-name")
    assert their_user != user, "CunionIds are per vendor"
    refused(
        "ResourceNotFound",
        call,
        theirs,
        "CreateBinding",
        AccessId=their_user,
        Tid=tid,
        Role="owner",
    )
    refused(
        "ResourceNotFound", call, mine, "CreateBinding", AccessId=their_user, Tid=tid, Role="owner"
    )


def test_wrong_credentials_are_refused(cloud: Cloud) -> None:
    secret_id, secret_key = cloud.new_key()
    refused(
        "AuthFailure.SignatureFailure",
        call,
        client(cloud, (secret_id, secret_key + "x")),
        "DescribeProducts",
        Limit=1,
        Offset=0,
    )
    refused(
        "AuthFailure.SecretIdNotFound",
        call,
        client(cloud, ("AKIDnope", secret_key)),
        "DescribeProducts",
        Limit=1,
        Offset=0,
    )


def test_get_requests_are_signed_and_typed_too(cloud: Cloud) -> None:
    key = cloud.new_key()
    api_get = client(cloud, key, method="GET")
    pid = _product(api_get, Features=["ypsxth", "spdxth"], ProductCate=1)
    got = call(api_get, "DescribeProduct", ProductId=pid).Data
    assert got.Features == ["ypsxth", "spdxth"] and got.ProductCate == 1
    tids = _devices(api_get, pid, 2)
    listed = call(api_get, "DescribeDevices", ProductId=pid, ReturnModel=True, Limit=10, Offset=0)
    assert {d.Tid for d in listed.Data} == set(tids)
    user = _user(api_get, "getter")
    call(api_get, "CreateBinding", AccessId=user, Tid=tids[0], Role="owner", ForceBind=False)
    refused("InvalidParameterValue", call, api_get, "CreateDevices", ProductId=pid, Number=0)
