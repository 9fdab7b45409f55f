"""Who reaches which device: bindings, device tokens, anonymous tokens, revocation, kicks."""

from __future__ import annotations

from typing import Any

import pytest

from iotvideo.app import LinkStatus
from iotvideo.device import DeviceStatus
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import Inbox, User, World, app_sdk, device_client

LEVEL = "ProWritable._logLevel"


async def _code(work: Any) -> int:
    with pytest.raises(IVError) as info:
        await work
    return int(info.value.code)


async def test_no_relation_and_no_device(world: World) -> None:
    async with app_sdk(world.cloud.url, world.stranger) as sdk:
        assert await _code(sdk.message.read_property(world.device.tid, LEVEL)) == 8003
        assert await _code(sdk.message.read_property("NOSUCHDEVICE", LEVEL)) == 8002


async def test_guests_read_but_do_not_change_settings(world: World) -> None:
    async with (
        device_client(world.cloud.url, world.device),
        app_sdk(world.cloud.url, world.guest) as sdk,
    ):
        assert await sdk.message.read_property(world.device.tid, LEVEL + ".setVal") == 3
        assert (
            await _code(sdk.message.write_property(world.device.tid, LEVEL + ".setVal", "1"))
            == 8003
        )
        # Guests may pass data: this device has no data handler, so the answer comes from it.
        assert await _code(sdk.message.send_data_to_device(world.device.tid, b"x")) == 20104


async def test_device_tokens_through_subscribe(world: World) -> None:
    token = world.vendor(
        "CreateDevToken", AccessId=world.stranger.access_id, Tids=[world.device.tid], TtlMinutes=10
    )
    dev_token = token.Data[0].AccessToken
    async with app_sdk(world.cloud.url, world.stranger) as sdk:
        assert await _code(sdk.message.read_property(world.device.tid, LEVEL)) == 8003
        reply = await sdk.net_config.subscribe_device(dev_token, world.device.tid)
        assert reply["role"] == "visitor"
        assert await sdk.message.read_property(world.device.tid, LEVEL + ".setVal") == 3
        assert (
            await _code(sdk.message.write_property(world.device.tid, LEVEL + ".setVal", "1"))
            == 8003
        )
        # The token grants that device only, and only to the user it was made for.
        assert await _code(sdk.net_config.subscribe_device(dev_token, world.devices[1].tid)) == 8003
    async with app_sdk(world.cloud.url, world.guest) as other:
        assert await _code(other.net_config.subscribe_device(dev_token, world.device.tid)) == 8003
        forged = dev_token[:-4] + "AAAA"
        assert await _code(other.net_config.subscribe_device(forged, world.device.tid)) == 20010


async def test_binding_token_subscribes_a_new_binding(world: World) -> None:
    newcomer = world.new_user("newcomer")
    async with app_sdk(world.cloud.url, newcomer) as sdk:
        bound = await world.avendor(
            "CreateBinding", AccessId=newcomer.access_id, Tid=world.devices[1].tid, Role="guest"
        )
        reply = await sdk.net_config.subscribe_device(bound.AccessToken, world.devices[1].tid)
        assert reply == {"tid": world.devices[1].tid, "role": "guest", "online": 0}
        assert await sdk.message.read_property(world.devices[1].tid, LEVEL + ".setVal") == 3


async def test_anonymous_visitor(world: World) -> None:
    made = world.vendor("CreateAnonymousAccessToken", TtlMinutes=5, Tid=world.device.tid)
    visitor = User(made.AccessId, made.AccessToken)
    async with (
        device_client(world.cloud.url, world.device),
        app_sdk(world.cloud.url, visitor) as sdk,
    ):
        assert await sdk.message.read_property(world.device.tid, LEVEL + ".setVal") == 3
        assert await _code(sdk.message.read_property(world.devices[1].tid, LEVEL)) == 8003
        assert (
            await _code(sdk.message.write_property(world.device.tid, LEVEL + ".setVal", "2"))
            == 8003
        )


async def test_renewing_the_token_ends_the_old_session(world: World) -> None:
    user = world.new_user("renewer", role="guest")
    async with app_sdk(world.cloud.url, user) as sdk:
        ended = sdk.link_status
        assert ended is LinkStatus.ONLINE
        statuses: list[LinkStatus] = []
        import asyncio

        gone = asyncio.get_running_loop().create_future()

        def watch(status: LinkStatus) -> None:
            statuses.append(status)
            if status is LinkStatus.TOKEN_FAILED and not gone.done():
                gone.set_result(None)

        sdk.add_status_listener(watch)
        await world.avendor(
            "CreateUsrToken",
            AccessId=user.access_id,
            UniqueId="test",
            TtlMinutes=5,
            OldAccessToken=user.token,
        )
        async with asyncio.timeout(10):
            await gone
        assert sdk.last_error is not None and sdk.last_error.code == 20010
        assert (
            await _code(sdk.message.read_property(world.device.tid, LEVEL))
            == ErrorCode.IVConnError_NotAvailableNow
        )


async def test_unbinding_cuts_the_device_off(world: World) -> None:
    user = world.new_user("leaving", role="guest")
    async with app_sdk(world.cloud.url, user) as sdk:
        assert await sdk.message.read_property(world.device.tid, LEVEL + ".setVal") == 3
        import asyncio

        cut = asyncio.get_running_loop().create_future()
        sdk.add_push_handler("unsubscribed", lambda push: cut.done() or cut.set_result(push.data))
        await world.avendor(
            "DeleteBinding", AccessId=user.access_id, Tid=world.device.tid, Role="guest"
        )
        async with asyncio.timeout(10):
            data = await cut
        assert data == {"tid": world.device.tid, "code": 20014, "msg": "the relation changed"}
        assert await _code(sdk.message.read_property(world.device.tid, LEVEL)) == 8003
        assert sdk.link_status is LinkStatus.ONLINE, "the session itself goes on"


async def test_force_bind_moves_the_device_to_the_new_owner(world: World) -> None:
    new_owner = world.new_user("new-owner")
    async with (
        app_sdk(world.cloud.url, world.owner) as old,
        device_client(world.cloud.url, world.device),
    ):
        assert await old.message.read_property(world.device.tid, LEVEL + ".setVal") == 3
        await world.avendor(
            "CreateBinding",
            AccessId=new_owner.access_id,
            Tid=world.device.tid,
            Role="owner",
            ForceBind=True,
        )
        async with app_sdk(world.cloud.url, new_owner) as new:
            after = await new.message.write_property(world.device.tid, LEVEL + ".setVal", "4")
            assert after["stVal"] == 4
        # The old owner's session re-checked its grants when the binding moved.
        assert await _code(old.message.read_property(world.device.tid, LEVEL)) == 8003


async def test_disable_kicks_the_device_and_refuses_it_until_run(world: World) -> None:
    import asyncio

    async with (
        device_client(world.cloud.url, world.device) as dc,
        app_sdk(world.cloud.url, world.owner) as sdk,
    ):
        inbox = Inbox(sdk)
        kicked = asyncio.get_running_loop().create_future()

        def on_status(status: DeviceStatus, error: IVError | None) -> None:
            if error is not None and error.code == 20011 and not kicked.done():
                kicked.set_result(status)

        dc.on_status = on_status
        await world.avendor("DisableDevice", Tids=[world.device.tid])
        await inbox.property("ProReadonly._online", stVal=0)
        async with asyncio.timeout(10):
            assert await kicked is not DeviceStatus.ONLINE
        assert (await world.avendor("DescribeDevice", Tid=world.device.tid)).Data.Online == 0
        assert (
            await _code(
                sdk.message.take_action(world.device.tid, "Action.cameraOn", '{"ctlVal": 1}')
            )
            == 8000
        )
        logins = dc.logins
        await world.avendor("RunDevice", Tids=[world.device.tid])
        await inbox.property("ProReadonly._online", stVal=1, timeout=15)
        async with asyncio.timeout(10):
            await dc.wait_online()
        assert dc.logins == logins + 1


async def test_relay_credentials_only_for_a_device_the_session_may_reach(world: World) -> None:
    async with app_sdk(world.cloud.url, world.owner) as owner:
        assert "ice_servers" in await owner.request("media.ice", {"tid": world.device.tid})
        assert await _code(owner.request("media.ice", {})) == 20143
    async with app_sdk(world.cloud.url, world.stranger) as stranger:
        assert await _code(stranger.request("media.ice", {"tid": world.device.tid})) == 8003
        assert await _code(stranger.request("media.ice", {"tid": "NOSUCHDEVICE"})) == 8002
