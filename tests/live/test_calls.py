"""One calling convention (issue 14): every SDK operation is a task to await, takes the
seed's ``completion`` callback, and has a blocking face in ``SyncIoTVideo``."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iotvideo.app import IoTVideo
from iotvideo.app.calls import call, seed_json
from iotvideo.app.cloudplayer import CloudPlayer
from iotvideo.app.devicemgr import DeviceMgr
from iotvideo.app.messages import MessageMgr
from iotvideo.app.netconfig import LanConfig, NetConfig
from iotvideo.app.playback import FileDownloader, PlaybackItem, PlaybackPlayer
from iotvideo.app.player import LivePlayer, MonitorPlayer, Transmission
from iotvideo.app.sync import Blocking, SyncIoTVideo
from iotvideo.app.vas import VAS
from iotvideo.device.media import DeviceMedia
from iotvideo.protocol.errors import ErrorCode, IVError
from tests.link.world import World, device_client
from tests.live.helpers import live

CLASSES = [
    IoTVideo,
    MessageMgr,
    NetConfig,
    LanConfig,
    VAS,
    DeviceMgr,
    Transmission,
    MonitorPlayer,
    LivePlayer,
    PlaybackPlayer,
    FileDownloader,
    CloudPlayer,
]
#: Plumbing, not operations of the seed: the raw link request the managers build on, and
#: a test hook that drops the connection.
PLUMBING = {"request", "drop_connection"}


def public_methods(cls: type) -> Iterator[tuple[str, Any]]:
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("_") and name not in PLUMBING:
            yield name, member


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_no_operation_is_a_bare_coroutine(cls: type) -> None:
    """Every operation returns a task (awaitable, running by itself) and takes
    ``completion``; only async iterators (frames, received, messages) stay async."""
    for name, method in public_methods(cls):
        assert not inspect.iscoroutinefunction(method), f"{cls.__name__}.{name} is a coroutine"
        signature = inspect.signature(method)
        if "Task" in str(signature.return_annotation):
            # completion(result, error), or the seed's own callbacks where it has several
            # (download_playback_file: ready, progress, canceled, success, failure).
            callbacks = {"completion"} | ({"success", "failure"} & set(signature.parameters))
            assert callbacks & set(signature.parameters), (cls.__name__, name)


async def test_completion_shapes() -> None:
    """The callback gets (result, None) or (None, IVError), shaped as the seed's; a failing
    callback is logged, not raised into the loop."""
    got: list[tuple[Any, Any]] = []

    async def ok() -> dict[str, int]:
        return {"a": 1}

    async def refused() -> None:
        raise IVError.of(ErrorCode.IVASrvErr_dst_offline, "offline")

    async def broken() -> None:
        raise OSError("disk full")

    assert await call(ok(), lambda r, e: got.append((r, e)), shape=seed_json) == {"a": 1}
    with pytest.raises(IVError):
        await call(refused(), lambda r, e: got.append((r, e)))
    with pytest.raises(OSError, match="disk full"):
        await call(broken(), lambda r, e: got.append((r, e)))
    pending = call(asyncio.Event().wait(), lambda r, e: got.append((r, e)))  # never ends
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending

    def explode(_r: Any, _e: Any) -> None:
        raise ValueError("a bug in the app")

    assert await call(ok(), explode) == {"a": 1}  # the SDK goes on
    # (A task's callbacks run before its awaiter resumes: all were heard by now.)
    assert json.loads(got[0][0]) == {"code": 0, "msg": "Success", "data": {"a": 1}}
    assert [e.code for _, e in got[1:]] == [8000, 21001, 21007]


def test_plain_code_is_told_what_to_use() -> None:
    sdk = IoTVideo()
    with pytest.raises(RuntimeError, match="SyncIoTVideo"):
        sdk.vas.get_service_detail_info("T")


async def test_each_manager_both_ways(world: World) -> None:
    """A call of each manager and player, awaited and with the seed's callback."""
    tid = world.device.tid
    results: dict[str, tuple[Any, Any]] = {}
    done = asyncio.Event()

    def keep(name: str) -> Any:
        def completion(result: Any, error: Any) -> None:
            results[name] = (result, error)
            if len(results) == 6:
                done.set()

        return completion

    async with live(world) as lv:
        sdk = lv.sdk
        assert await sdk.message.read_property(tid, "ProWritable._logLevel.setVal") == 3
        sdk.message.read_property(tid, "ProWritable._logLevel.setVal", completion=keep("read"))
        detail = await sdk.vas.get_service_detail_info(tid)
        sdk.vas.get_service_detail_info(tid, completion=keep("vas"))
        sdk.device_mgr.query_new_version(tid, completion=keep("ota"))
        sdk.net_config.get_bind_token(completion=keep("token"))
        player = MonitorPlayer(tid, sdk=sdk)
        player.play(completion=keep("play"))
        sdk.vas.get_service_detail_info("NOSUCHDEVICE", completion=keep("refused"))
        async with asyncio.timeout(20):
            await done.wait()
        await player.stop()
    assert results["read"] == ("3", None)
    assert json.loads(results["vas"][0]) == {"code": 0, "msg": "Success", "data": detail}
    assert json.loads(results["ota"][0])["code"] == 0
    assert results["token"][0].startswith("bt_")
    assert results["play"] == (None, None)
    assert results["refused"][0] is None and results["refused"][1].code == 8002


def test_the_blocking_face_covers_managers_and_players(world: World, tmp_path: Path) -> None:
    """A script with no asyncio: managers, a player with its frames, a transmission."""
    online = threading.Event()
    stop = threading.Event()
    received: list[bytes] = []

    def camera() -> None:
        async def run() -> None:
            async with device_client(world.cloud.url, world.device) as dc:
                media = DeviceMedia(dc, on_data=lambda _s, data: received.append(data))
                online.set()
                await asyncio.to_thread(stop.wait)
                await media.close()

        asyncio.run(run())

    thread = threading.Thread(target=camera)
    thread.start()
    try:
        assert online.wait(30)
        with SyncIoTVideo(world.cloud.url, timeout=60) as sdk:
            sdk.register(world.owner.access_id, world.owner.token)
            tid = world.device.tid
            assert sdk.message.read_property(tid, "ProWritable._logLevel.setVal") == 3
            assert sdk.vas.get_service_detail_info(tid)["status"] in (1, 2, 3)
            assert sdk.device_mgr.query_new_version(tid) == {}
            assert sdk.net_config.get_bind_token().startswith("bt_")
            with pytest.raises(IVError) as refused:
                sdk.vas.get_video_date_list("NOSUCHDEVICE")
            assert refused.value.code == ErrorCode.IVASrvErr_dst_notexsit
            player = sdk.monitor_player(tid)
            player.play()
            assert player.connected
            frames = player.frames()
            first = next(frames)
            assert (first.width, first.height) == (320, 180)
            frames.close()
            assert player.snapshot(tmp_path / "now.jpg")[:2] == b"\xff\xd8"
            player.stop()
            with sdk.transmission(tid) as link:
                link.connect()
                link.send(b"hello camera")
            assert received == [b"hello camera"]
    finally:
        stop.set()
        thread.join(30)


async def test_a_player_without_sdk_uses_the_registered_instance(world: World) -> None:
    """The README makes ``IoTVideo()`` (not the shared instance): a player made without
    ``sdk=`` plays through it instead of failing with 21025."""
    async with live(world) as lv:
        player = MonitorPlayer(world.device.tid)
        assert player.sdk is lv.sdk
        await player.play()
        await player.stop()


# Every operation, walked with an SDK that has no cloud to reach (a closed loopback port):
# each answers at once, with a result or the seed's code, the same in every form.
NOWHERE = "http://127.0.0.1:9"
ARGS: dict[str, Any] = {
    "device_id": "T",
    "path": "ProReadonly.x",
    "json_value": "1",
    "data": b"x",
    "url": f"{NOWHERE}/x",
    "start_time": 1,
    "end_time": 2,
    "event_ids": ["a"],
    "access_token": "t",
    "access_id": "a",
    "ssid": "s",
    "password": "p",
    "token": "t",
    "ticket": "t",
    "definition": "mid",
    "speed": 2.0,
    "time_ms": 1,
    "file_time": 1,
}
#: Shorter waits than the defaults (the walk must not take minutes).
QUICK: dict[str, dict[str, Any]] = {
    "register": {"timeout": 0.5, "fail_fast": True},
    "register_stream_ticket": {"timeout": 0.5, "fail_fast": True},
    "get_device_list": {"timeout": 0.2},
    "send_wifi": {"timeout": 0.5},
}


def targets(sdk: Any, make: Callable[..., Any]) -> dict[type, Any]:
    """The object of each class to call operations on (``make(cls, *args)`` builds a
    player the way the caller's form does)."""
    return {
        IoTVideo: sdk,
        MessageMgr: sdk.message,
        NetConfig: sdk.net_config,
        LanConfig: sdk.net_config.lan,
        VAS: sdk.vas,
        DeviceMgr: sdk.device_mgr,
        Transmission: make(Transmission, "T"),
        MonitorPlayer: make(MonitorPlayer, "T"),
        LivePlayer: make(LivePlayer, "T"),
        PlaybackPlayer: make(PlaybackPlayer, "T", PlaybackItem(1, 2)),
        FileDownloader: make(FileDownloader, "T"),
        CloudPlayer: make(CloudPlayer, "T", 1, 2),
    }


def operations(files: Path) -> Iterator[tuple[type, str, dict[str, Any]]]:
    """Each operation with its required arguments; a file path is one in ``files``."""
    for cls in CLASSES:
        for name, method in public_methods(cls):
            parameters = inspect.signature(method).parameters
            if "completion" not in parameters:
                continue
            wanted = {
                p: files / f"{cls.__name__}.{name}" if "Path" in str(spec.annotation) else ARGS[p]
                for p, spec in parameters.items()
                if p in ARGS and spec.default is inspect.Parameter.empty
            }
            yield cls, name, wanted | QUICK.get(name, {})


def outcome_of(result: Any = None, error: BaseException | None = None) -> Any:
    if error is not None:
        return ("error", int(getattr(error, "code", -1)))
    return ("ok", type(result).__name__)


async def test_every_operation_awaited_and_with_a_callback(tmp_path: Path) -> None:
    sdk = IoTVideo()
    sdk.setup(NOWHERE)
    sdk.net_config.lan.interfaces = ["127.0.0.1"]  # DNS-SD on loopback only

    def make(cls: type, *args: Any) -> Any:
        return cls(*args, sdk=sdk)

    objects = targets(sdk, make)
    walked = 0
    for cls, name, kwargs in operations(tmp_path):
        method = getattr(objects[cls], name)
        try:
            awaited = outcome_of(await method(**kwargs))
        except IVError as exc:
            awaited = outcome_of(error=exc)
        heard: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        task = method(
            **kwargs, completion=lambda r, e, heard=heard: heard.set_result(outcome_of(r, e))
        )
        with contextlib.suppress(IVError):
            await task
        async with asyncio.timeout(5):
            assert await heard == awaited, (cls.__name__, name)
        walked += 1
    assert walked >= 70  # every operation of every manager and player
    # Nothing reached a device, so no file was written (a failed download leaves none).
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


def test_every_operation_through_the_blocking_face(tmp_path: Path) -> None:
    with SyncIoTVideo(NOWHERE, timeout=10) as blocking:
        blocking.net_config.lan.interfaces = ["127.0.0.1"]

        def make(cls: type, *args: Any) -> Any:
            return Blocking(blocking.invoke(cls, *args, sdk=blocking.sdk), blocking)

        objects = targets(blocking, make)
        objects[IoTVideo] = Blocking(blocking.sdk, blocking)
        differ = []
        for cls, name, kwargs in operations(tmp_path):
            try:
                got = outcome_of(getattr(objects[cls], name)(**kwargs))
            except IVError as exc:
                got = outcome_of(error=exc)
            try:  # the same call awaited on the SDK's own loop
                wanted = outcome_of(blocking.invoke(getattr(objects[cls]._target, name), **kwargs))
            except IVError as exc:
                wanted = outcome_of(error=exc)
            if got != wanted:
                differ.append((cls.__name__, name, got, wanted))
        assert not differ
