"""Events with pictures: the seed's typeMask rules, paging by the last start time,
thumbnails, deletion (the pictures go too)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from iotvideo.device.cloudrec import CloudRecorder
from iotvideo.device.media import DeviceMedia
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.vas import matches_type_masks
from tests.link.world import User, World, app_sdk, device_client, make_world
from tests.support import Cloud

MOTION, SOUND, VIDEO = 1, 2, 0x8000


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    """A vendor's world on each backend (SQLite and PostgreSQL)."""
    return make_world(cloud, devices=1)


def test_type_mask_rule() -> None:
    assert matches_type_masks(MOTION, [3]) and matches_type_masks(SOUND, [3])
    assert not matches_type_masks(4, [3])
    assert matches_type_masks(MOTION | SOUND, [1, 2])
    assert not matches_type_masks(MOTION, [1, 2])
    assert matches_type_masks(4, [])


async def test_events_filter_page_and_delete(world: World, tmp_path: Path) -> None:
    tid = world.device.tid
    base = int(time.time()) - 3600
    # Every case: motion only, sound only, both, neither (bit 2), with video (bit 15).
    kinds = [MOTION, SOUND, MOTION | SOUND, 4, MOTION | VIDEO] * 3
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)  # events need a plan
    async with device_client(world.cloud.url, world.device) as device:
        media = DeviceMedia(device, video="testsrc:?size=320x180", audio="none")
        recorder = CloudRecorder(device, media, buffer_dir=tmp_path / "buf")
        await recorder.start()
        made = [
            await recorder.event(
                kind, start=base + i * 10, end=base + i * 10 + 5, live_picture=i == 0
            )
            for i, kind in enumerate(kinds)
        ]
        await recorder.drained()
        await recorder.stop()
        await media.close()
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        everything = await sdk.vas.get_event_list(tid, base, base + 3600)
        assert [e["alarmId"] for e in everything["list"]] == made[::-1]  # newest first
        assert everything["pageEnd"] is True
        either = await sdk.vas.get_event_list(tid, base, base + 3600, type_masks=[3])
        assert [e["alarmType"] for e in either["list"]] == [k for k in kinds[::-1] if k & 3]
        both = await sdk.vas.get_event_list(tid, base, base + 3600, type_masks=[1, 2])
        assert {e["alarmType"] for e in both["list"]} == {MOTION | SOUND}
        assert len(both["list"]) == 3
        first = next(e for e in everything["list"] if e["alarmId"] == made[0])
        assert (first["firstAlarmType"], first["endTime"] - first["startTime"]) == (MOTION, 5)

        # Pages of 4, each asked from the last start time.
        pages, end = [], base + 3600
        while True:
            page = await sdk.vas.get_event_list(tid, base, end, page_size=4)
            pages.append([e["alarmId"] for e in page["list"]])
            if page["pageEnd"]:
                break
            end = page["list"][-1]["startTime"]
        assert [len(p) for p in pages] == [4, 4, 4, 3]
        assert [e for p in pages for e in p] == made[::-1]

        # The first event has a picture of the live stream, and a thumbnail.
        url = everything["imgUrlPrefix"] + first["imgUrlSuffix"]
        async with httpx.AsyncClient() as http:
            picture = await http.get(url)
            thumb = await http.get(url + everything["thumbUrlSuffix"])
        assert picture.content[:2] == b"\xff\xd8" and len(thumb.content) < len(picture.content)

        # Only the owner deletes: a guest and an anonymous visitor may look, not delete.
        anonymous = world.vendor("CreateAnonymousAccessToken", TtlMinutes=5, Tid=tid)
        for who in (world.guest, User(anonymous.AccessId, anonymous.AccessToken)):
            async with app_sdk(world.cloud.url, who) as other:
                assert len((await other.vas.get_event_list(tid, base, base + 3600))["list"]) == 15
                with pytest.raises(IVError) as not_owner:
                    await other.vas.delete_events(tid, [made[0]])
                assert not_owner.value.code == ErrorCode.IVASrvErr_dst_error_relation
        deleted = await sdk.vas.delete_events(tid, [made[0], made[1], "nope"])
        assert sorted(deleted) == sorted(made[:2])
        after = await sdk.vas.get_event_list(tid, base, base + 3600)
        assert made[0] not in [e["alarmId"] for e in after["list"]]
        async with httpx.AsyncClient() as http:
            assert (await http.get(url)).status_code == 404  # its picture is gone
        with pytest.raises(IVError) as bad:
            await sdk.vas.get_event_list(tid, base, base + 3600, page_size=51)
        assert bad.value.code == ErrorCode.IVTermErr_msg_user_cmd_param_error
    async with app_sdk(world.cloud.url, world.stranger) as other:
        with pytest.raises(IVError) as no:
            await other.vas.get_event_list(tid, base, base + 3600)
        assert no.value.code == ErrorCode.IVASrvErr_dst_error_relation


async def test_pages_never_split_a_second(world: World, tmp_path: Path) -> None:
    """Seven events in one second and pages of four: the page that reaches that second
    takes all seven, so the next page (below it) loses none."""
    tid = world.device.tid
    await world.avendor("CreateStorageService", PkgId="yc1m3d", Tid=tid)
    base = int(time.time()) - 7200
    starts = [base + 30, base + 20] + [base + 10] * 7 + [base]
    async with device_client(world.cloud.url, world.device) as device:
        media = DeviceMedia(device, video="testsrc:?size=320x180", audio="none")
        recorder = CloudRecorder(device, media, buffer_dir=tmp_path / "buf")
        await recorder.start()
        made = [await recorder.event(MOTION, start=t, end=t + 1) for t in starts]
        await recorder.drained()
        await recorder.stop()
        await media.close()
    async with app_sdk(world.cloud.url, world.owner) as sdk:
        pages, end = [], base + 60
        while True:
            page = await sdk.vas.get_event_list(tid, base, end, page_size=4, type_masks=MOTION)
            pages.append([e["alarmId"] for e in page["list"]])
            if page["pageEnd"]:
                break
            end = page["list"][-1]["startTime"]
    assert [len(p) for p in pages] == [9, 1]
    assert sorted(e for p in pages for e in p) == sorted(made)
