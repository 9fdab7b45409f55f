"""MJPEG for restream: ``/TID/stream.mjpeg``, a ``multipart/x-mixed-replace`` stream of
JPEG pictures that a browser's ``<img>``, Home Assistant's MJPEG camera and most NVRs
show without any player.

A camera's MJPEG is made once, however many clients read it: one subscriber to the feed
decodes every access unit (H.264 needs them all) on a worker thread and, at most
:data:`FPS` times a second, encodes the newest picture as a JPEG; every client gets
that same JPEG. A client that reads slowly skips pictures, it never queues them. The
decoder runs only while some client reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from iotvideo.app.player import EncodedPacket
from iotvideo.media.h264 import H264Decoder
from iotvideo.media.recorder import encode_picture
from iotvideo.media.worker import SerialWorker

__all__ = ["BOUNDARY", "FPS", "MjpegSource"]

log = logging.getLogger("iotvideo.app.restream")

#: Pictures per second at most (a still-picture stream; RTSP and HLS carry the full rate).
FPS = 5.0
BOUNDARY = "iotvideoframe"


class MjpegSource:
    """One camera's JPEG pictures, for as many clients as read them."""

    def __init__(
        self, name: str, subscribe: Callable[[Callable[[EncodedPacket], object]], Any]
    ) -> None:
        self._name = name
        self._subscribe = subscribe
        self._unsubscribe: Callable[[], None] | None = None
        self._worker: SerialWorker | None = None
        self._decoder: H264Decoder | None = None
        self._last_encoded = 0.0
        #: The newest JPEG and its number (clients wait for a newer one).
        self.picture: bytes = b""
        self.number = 0
        self.encoded = 0  # JPEGs made (for tests and metrics)
        self._changed = asyncio.Event()
        self.clients = 0

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._worker = SerialWorker(f"mjpeg {self._name}", maxsize=120)
        self._decoder = H264Decoder()
        worker, decoder = self._worker, self._decoder

        def decode(packet: EncodedPacket) -> None:  # on the worker
            try:
                frames = decoder.decode(packet.data, packet.timestamp)
            except Exception:  # a broken access unit: the next keyframe mends it
                return
            now = time.monotonic()
            if frames and now - self._last_encoded >= 1 / FPS:
                self._last_encoded = now
                jpeg = encode_picture(frames[-1], "jpeg")
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._publish, jpeg)

        def on_packet(packet: EncodedPacket | None) -> None:
            if packet is not None and packet.mime.lower().startswith("video/"):
                worker.submit(decode, packet)

        self._unsubscribe = self._subscribe(on_packet)

    def _stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        self._decoder = None

    def _publish(self, jpeg: bytes) -> None:
        self.picture, self.number = jpeg, self.number + 1
        self.encoded += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def frames(self, *, timeout: float = 10.0) -> AsyncIterator[bytes]:
        """The stream's body for one client: each newer picture as a multipart part.
        Ends (and the decoding with the last client) when the client goes, or when no
        picture comes for ``timeout`` seconds."""
        self.clients += 1
        if self.clients == 1:
            self._start()
        try:
            seen = 0
            while True:
                while self.number == seen:
                    async with asyncio.timeout(timeout):
                        await self._changed.wait()
                seen, jpeg = self.number, self.picture
                yield (
                    (
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n"
                    ).encode()
                    + jpeg
                    + b"\r\n"
                )
        except TimeoutError:
            log.info("%s: no picture for %g s; the MJPEG stream ends", self._name, timeout)
        finally:
            self.clients -= 1
            if self.clients == 0:
                self._stop()
