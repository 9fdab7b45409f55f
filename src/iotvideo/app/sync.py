"""A blocking face of the whole app SDK, for scripts and notebooks: no asyncio in sight.

::

    from iotvideo.app.sync import SyncIoTVideo

    with SyncIoTVideo("http://cloud.example:8080") as sdk:
        sdk.register(access_id, access_token)
        print(sdk.message.read_property(device_id, "ProReadonly.temperature"))
        ranges = sdk.vas.get_video_play_list(device_id, start, end)
        player = sdk.monitor_player(device_id)
        player.play()
        player.snapshot("now.jpg")
        for frame in player.frames():  # a plain iterator of decoded frames
            break
        player.stop()

The asynchronous SDK runs on an event loop in a background thread. Every manager
(``message``, ``net_config`` and its ``lan`` and ``qrcode``, ``vas``, ``device_mgr``)
and every player, ``Transmission``, ``FileDownloader`` and ``CloudPlayer`` made here is
wrapped: each call runs on that thread and waits for its result (raising
:class:`IVError` as the awaited call would); async iterators (``frames()``,
``received()``, ``messages()``) become plain iterators; attributes read and set as on
the object. Callbacks (``completion=``, delegates, observers) run on the SDK's thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from iotvideo.app.sdk import IoTVideo
from iotvideo.app.status import LinkStatus

__all__ = ["Blocking", "SyncIoTVideo"]

T = TypeVar("T")


class SyncIoTVideo:
    """The app SDK with blocking calls. ``timeout``: the longest any call waits (None: as
    long as the operation's own timeouts allow; downloads can take minutes)."""

    def __init__(self, cloud: str | list[str], *, timeout: float | None = None) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="iotvideo-sdk", daemon=True
        )
        self._thread.start()
        self.sdk: IoTVideo = self.invoke(_make, cloud)

    # Running things on the SDK's thread

    def invoke(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` on the SDK's thread and wait for it (and for what it returns, when
        that is awaitable: an SDK task or coroutine)."""

        async def go() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return self.wait(go())

    def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking call from the SDK's own thread would never return")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)

    def wrap(self, target: Any) -> Any:
        """``target``'s blocking face (SDK objects), or ``target`` itself (plain values)."""
        if isinstance(target, AsyncIterator):
            return _Iterator(target, self)
        if _is_sdk_object(target):
            return Blocking(target, self)
        return target

    def close(self) -> None:
        """Log out and stop the background loop."""
        if self._loop.is_running():
            self.invoke(self.sdk.unregister)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop.close()

    def __enter__(self) -> SyncIoTVideo:
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.close()

    # The SDK

    @property
    def link_status(self) -> LinkStatus:
        return self.sdk.link_status

    def register(self, access_id: str, access_token: str, **options: Any) -> None:
        """Log in (see ``IoTVideo.register``); returns once online."""
        options.setdefault("timeout", self.timeout or 30.0)
        self.invoke(self.sdk.register, access_id, access_token, **options)

    def unregister(self) -> None:
        self.invoke(self.sdk.unregister)

    def __getattr__(self, name: str) -> Any:
        # Managers and anything else of the SDK object: sdk.message, sdk.vas, ...
        return self.wrap(getattr(self.sdk, name))

    # Players and connections, made on the SDK's thread

    def monitor_player(self, device_id: str, **options: Any) -> Any:
        from iotvideo.app.player import MonitorPlayer

        return self._make_player(MonitorPlayer, device_id, options)

    def live_player(self, device_id: str, **options: Any) -> Any:
        from iotvideo.app.player import LivePlayer

        return self._make_player(LivePlayer, device_id, options)

    def playback_player(self, device_id: str, **options: Any) -> Any:
        from iotvideo.app.playback import PlaybackPlayer

        return self._make_player(PlaybackPlayer, device_id, options)

    def transmission(self, device_id: str, **options: Any) -> Any:
        from iotvideo.app.player import Transmission

        return self._make_player(Transmission, device_id, options)

    def file_downloader(self, device_id: str, **options: Any) -> Any:
        from iotvideo.app.playback import FileDownloader

        return self._make_player(FileDownloader, device_id, options)

    def cloud_player(
        self, device_id: str, start_time: int, end_time: int = 0, **options: Any
    ) -> Any:
        from iotvideo.app.cloudplayer import CloudPlayer

        player = self.invoke(CloudPlayer, device_id, start_time, end_time, sdk=self.sdk, **options)
        return Blocking(player, self)

    def _make_player(self, cls: type[Any], device_id: str, options: dict[str, Any]) -> Any:
        return Blocking(self.invoke(cls, device_id, sdk=self.sdk, **options), self)

    # Shortcuts kept from the first version of this facade

    def subscribe_device(self, access_token: str, device_id: str) -> dict[str, Any]:
        return dict(self.invoke(self.sdk.net_config.subscribe_device, access_token, device_id))

    def read_property(self, device_id: str, path: str = "") -> Any:
        return self.invoke(self.sdk.message.read_property, device_id, path)

    def write_property(self, device_id: str, path: str, json_value: Any) -> Any:
        return self.invoke(self.sdk.message.write_property, device_id, path, json_value)

    def take_action(
        self, device_id: str, path: str, json_value: Any, *, timeout: float | None = None
    ) -> Any:
        return self.invoke(
            self.sdk.message.take_action, device_id, path, json_value, timeout=timeout
        )

    def add_property(self, device_id: str, path: str, json_value: Any) -> Any:
        return self.invoke(self.sdk.message.add_property, device_id, path, json_value)

    def delete_property(self, device_id: str, path: str) -> None:
        self.invoke(self.sdk.message.delete_property, device_id, path)

    def send_data_to_device(self, device_id: str, data: bytes, **options: Any) -> bytes | None:
        result: bytes | None = self.invoke(
            self.sdk.message.send_data_to_device, device_id, data, **options
        )
        return result

    def send_data_to_server(self, url: str, data: bytes | None = None, **options: Any) -> bytes:
        result: bytes = self.invoke(self.sdk.message.send_data_to_server, url, data, **options)
        return result

    def get_record_dates(self, device_id: str, month: str | None = None) -> list[int]:
        """Days of ``month`` (YYYY-MM) with recordings on the device's card."""
        from iotvideo.app.playback import get_record_dates

        days: list[int] = self.invoke(get_record_dates, device_id, month, sdk=self.sdk)
        return days

    def get_playback_list(
        self, device_id: str, start_time: int = 0, end_time: int | None = None, **options: Any
    ) -> Any:
        """A page of the card's recording files (see ``app.playback.get_playback_list``)."""
        from iotvideo.app.playback import get_playback_list

        return self.invoke(
            get_playback_list, device_id, start_time, end_time, sdk=self.sdk, **options
        )

    def download_playback_file(self, device_id: str, file_time: int, path: str) -> Any:
        """Download a card file into ``path`` (resuming a partial one); the result."""
        downloader = self.file_downloader(device_id)
        try:
            return downloader.download_to(path, file_time)
        finally:
            downloader.stop()


class Blocking:
    """The blocking face of one SDK object: its methods run on the SDK's thread and wait;
    what they return is wrapped in turn when it is an SDK object or an async iterator."""

    __slots__ = ("_owner", "_target")

    def __init__(self, target: Any, owner: SyncIoTVideo) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if callable(value) and not isinstance(value, type):
            owner = self._owner

            def blocking(*args: Any, **kwargs: Any) -> Any:
                return owner.wrap(owner.invoke(value, *args, **kwargs))

            blocking.__name__ = name
            blocking.__doc__ = getattr(value, "__doc__", None)
            return blocking
        return self._owner.wrap(value)

    def __setattr__(self, name: str, value: Any) -> None:
        # On the SDK's thread: some setters start work (PlaybackPlayer.speed).
        self._owner.invoke(setattr, self._target, name, value)

    def __dir__(self) -> list[str]:
        return dir(self._target)

    def __repr__(self) -> str:
        return f"Blocking({self._target!r})"

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: Any) -> None:
        for name in ("stop", "disconnect"):
            if hasattr(self._target, name):
                getattr(self, name)()
                return


class _Iterator(Iterator[Any]):
    """An async iterator of the SDK (``frames()``) as a plain iterator."""

    def __init__(self, source: AsyncIterator[Any], owner: SyncIoTVideo) -> None:
        self._source = source
        self._owner = owner

    def __next__(self) -> Any:
        async def step() -> Any:
            return await anext(self._source)

        try:
            return self._owner.wait(step())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            self._owner.invoke(aclose)


async def _make(cloud: str | list[str]) -> IoTVideo:
    sdk = IoTVideo()
    sdk.setup(cloud)
    return sdk


def _is_sdk_object(value: Any) -> bool:
    """Managers, players and connections: the objects whose calls are wrapped (results
    such as pages, results and devices are plain values, returned as they are)."""
    from iotvideo.app.cloudplayer import CloudPlayer
    from iotvideo.app.devicemgr import DeviceMgr
    from iotvideo.app.messages import MessageMgr
    from iotvideo.app.netconfig import LanConfig, NetConfig, QRCodeConfig
    from iotvideo.app.player import Connection
    from iotvideo.app.vas import VAS

    return isinstance(
        value,
        (MessageMgr, NetConfig, LanConfig, QRCodeConfig, VAS, DeviceMgr, Connection, CloudPlayer),
    )
