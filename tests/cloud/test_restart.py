"""The cloud stops gracefully on SIGTERM/SIGINT and finds everything again on restart."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.cloud.official import call, client
from tests.support import start_cloud


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_restart_on_the_same_data_dir(tmp_path: Path, sig: int) -> None:
    first = start_cloud(tmp_path)
    key = first.new_key()
    api = client(first, key)
    pid = call(
        api, "CreateProduct", ProductModel="ipc", ProductName="keep", ProductDescription="k"
    ).Data.ProductId
    tids = [d.Tid for d in call(api, "CreateDevices", ProductId=pid, Number=2).Data]
    user = call(api, "CreateAppUsr", CunionId="persistent").AccessId
    call(api, "CreateBinding", AccessId=user, Tid=tids[0], Role="owner", Nick="Front")
    call(api, "DisableDevice", Tids=[tids[1]])
    token = call(api, "CreateUsrToken", AccessId=user, UniqueId="p", TtlMinutes=60).AccessToken
    assert first.stop(sig) == 0, "".join(first.log)
    assert first.log[-1] == "iotvideo cloud stopped\n", "".join(first.log)

    second = start_cloud(tmp_path)
    try:
        api = client(second, key)
        assert call(api, "DescribeProduct", ProductId=pid).Data.ProductName == "keep"
        listed = call(api, "DescribeDevices", ProductId=pid, ReturnModel=True, Limit=10, Offset=0)
        assert {d.Tid: d.Disabled for d in listed.Data} == {tids[0]: False, tids[1]: True}
        assert call(api, "CreateAppUsr", CunionId="persistent").NewRegist is False
        bound = call(api, "DescribeBindDev", AccessId=user).Data
        assert [(b.Tid, b.DeviceName, b.Role) for b in bound] == [(tids[0], "Front", "owner")]
        renewed = call(
            api, "CreateUsrToken", AccessId=user, UniqueId="p", TtlMinutes=5, OldAccessToken=token
        )
        assert renewed.AccessToken != token
    finally:
        assert second.stop() == 0, "".join(second.log)
