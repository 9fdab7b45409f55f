"""A blocking face of the app SDK, for scripts and notebooks.

::

    from iotvideo.app.sync import SyncIoTVideo

    with SyncIoTVideo("http://cloud.example:8080") as sdk:
        sdk.register(access_id, access_token)
        print(sdk.read_property(device_id, "ProReadonly.temperature"))

The asynchronous SDK runs on an event loop in a background thread; each method waits
for its result. Everything else (callbacks, delegates) runs on that thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from iotvideo.app.sdk import IoTVideo
from iotvideo.app.status import LinkStatus

__all__ = ["SyncIoTVideo"]

T = TypeVar("T")


class SyncIoTVideo:
    def __init__(self, cloud: str | list[str], *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="iotvideo-sdk", daemon=True
        )
        self._thread.start()
        self.sdk: IoTVideo = self._run(self._make(cloud))

    @staticmethod
    async def _make(cloud: str | list[str]) -> IoTVideo:
        sdk = IoTVideo()
        sdk.setup(cloud)
        return sdk

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout or self.timeout)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call an SDK method on the loop's thread (its tasks need that loop) and wait."""

        async def go() -> Any:
            return await fn(*args, **kwargs)

        return self._run(go())

    def close(self) -> None:
        """Log out and stop the background loop."""
        if self._loop.is_running():
            self._run(self.sdk.unregister())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.timeout)
        self._loop.close()

    def __enter__(self) -> SyncIoTVideo:
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.close()

    @property
    def link_status(self) -> LinkStatus:
        return self.sdk.link_status

    def register(self, access_id: str, access_token: str) -> None:
        self._run(self.sdk.register(access_id, access_token, timeout=self.timeout))

    def subscribe_device(self, access_token: str, device_id: str) -> dict[str, Any]:
        return dict(self._call(self.sdk.net_config.subscribe_device, access_token, device_id))

    def read_property(self, device_id: str, path: str = "") -> Any:
        return self._call(self.sdk.message.read_property, device_id, path)

    def write_property(self, device_id: str, path: str, json_value: Any) -> Any:
        return self._call(self.sdk.message.write_property, device_id, path, json_value)

    def take_action(
        self, device_id: str, path: str, json_value: Any, *, timeout: float | None = None
    ) -> Any:
        return self._call(
            self.sdk.message.take_action, device_id, path, json_value, timeout=timeout
        )

    def add_property(self, device_id: str, path: str, json_value: Any) -> Any:
        return self._call(self.sdk.message.add_property, device_id, path, json_value)

    def delete_property(self, device_id: str, path: str) -> None:
        self._call(self.sdk.message.delete_property, device_id, path)

    def send_data_to_device(
        self,
        device_id: str,
        data: bytes,
        *,
        expect_response: bool = False,
        timeout: float | None = None,
    ) -> bytes | None:
        send = self.sdk.message.send_data_to_device
        result: bytes | None = self._call(
            send, device_id, data, expect_response=expect_response, timeout=timeout
        )
        return result

    def send_data_to_server(
        self, url: str, data: bytes | None = None, *, timeout: float | None = None
    ) -> bytes:
        result: bytes = self._call(self.sdk.message.send_data_to_server, url, data, timeout=timeout)
        return result

    # The memory card

    def get_record_dates(self, device_id: str, month: str | None = None) -> list[int]:
        """Days of ``month`` (YYYY-MM) with recordings on the device's card."""
        from iotvideo.app.playback import get_record_dates

        days: list[int] = self._call(get_record_dates, device_id, month, sdk=self.sdk)
        return days

    def get_playback_list(
        self, device_id: str, start_time: int = 0, end_time: int | None = None, **options: Any
    ) -> Any:
        """A page of the card's recording files (see ``app.playback.get_playback_list``)."""
        from iotvideo.app.playback import get_playback_list

        return self._call(
            get_playback_list, device_id, start_time, end_time, sdk=self.sdk, **options
        )

    def download_playback_file(self, device_id: str, file_time: int, path: str) -> Any:
        """Download a card file into ``path`` (resuming a partial one); the result."""
        from iotvideo.app.playback import FileDownloader

        async def go() -> Any:
            downloader = FileDownloader(device_id, sdk=self.sdk)
            try:
                return await downloader.download_to(path, file_time)
            finally:
                await downloader.stop()

        return self._run(go(), timeout=max(self.timeout, 600))
