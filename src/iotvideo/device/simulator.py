"""A simulated camera: the demo thing model, driven by a :class:`DeviceClient`.

It has a writable night-vision mode and LED, an action ``cameraOn``, a temperature that
drifts, and a ``motion`` event now and then. ``DEMO_MODEL`` is the product model it needs
(publish it with RunIotModel; ``iotvideo device model`` prints it).

:func:`as_filmed` shows a picture as the camera's lens would see it held up to it, for
QR-code provisioning without a real camera.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from iotvideo.device.client import DeviceClient
from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["DEMO_MODEL", "SimulatedCamera", "as_filmed"]

log = logging.getLogger("iotvideo.device.sim")

DEMO_MODEL: dict[str, Any] = {
    "ProReadonly": {
        "temperature": {"type": "float32", "min": -40, "max": 125, "unit": "C"},
        "cameraState": {"type": "uint32", "enum": [0, 1]},
    },
    "ProWritable": {
        "nightMode": {"type": "uint32", "enum": [0, 1, 2], "default": 0},
        "led": {"type": "bool", "default": True},
    },
    "Action": {"cameraOn": {"type": "uint32", "enum": [0, 1]}},
    "Event": {"motion": {"type": "json"}},
}


def as_filmed(png: bytes, rng: random.Random) -> Image.Image:
    """A phone screen showing ``png`` as a camera films it: scaled (0.45-1.6x), rotated
    (up to 35 degrees), blurred, dimmed, with glare and sensor noise, on a grey background.

    Deterministic for a given ``rng``. Grayscale, as a QR scanner reads it.
    """
    image = Image.open(io.BytesIO(png)).convert("L")
    scale = rng.uniform(0.45, 1.6)
    image = image.resize(
        (int(image.width * scale), int(image.height * scale)), Image.Resampling.BILINEAR
    )
    image = image.rotate(
        rng.uniform(-35, 35), expand=True, fillcolor=255, resample=Image.Resampling.BILINEAR
    )
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels * rng.uniform(0.55, 0.95) + rng.uniform(0, 40)  # contrast and glare
    noise = np.random.default_rng(rng.randrange(1 << 30))
    pixels += noise.normal(0, rng.uniform(4, 18), pixels.shape)
    canvas = Image.new("L", (image.width + 80, image.height + 80), color=rng.randrange(150, 230))
    canvas.paste(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), (40, 40))
    return canvas


class SimulatedCamera:
    """The demo camera's behaviour on top of a device client."""

    def __init__(
        self,
        client: DeviceClient,
        *,
        temperature_interval: float = 10.0,
        motion_interval: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.temperature_interval = temperature_interval
        self.motion_interval = motion_interval
        self.rng = rng or random.Random()  # noqa: S311 - simulated readings, not secrets
        self.temperature = 21.0
        self.camera_on = 1
        self.night_mode = 0
        self.led = True
        #: When set, motion is also a cloud event (with a picture) while it records.
        self.recorder: Any = None
        #: Paths the product's thing model lacks: said once, then no longer sent.
        self.unmodelled: set[str] = set()
        client.on_write("nightMode")(self._night_mode)
        client.on_write("led")(self._led)
        client.on_action("cameraOn")(self._camera_on)
        client.on_read("temperature")(lambda: round(self.temperature, 2))
        client.on_data(self._data)

    def _night_mode(self, value: int) -> int:
        self.night_mode = value
        log.info("night mode -> %s", value)
        return value

    def _led(self, value: bool) -> bool:
        self.led = value
        log.info("LED -> %s", value)
        return value

    async def _camera_on(self, value: int) -> dict[str, Any]:
        self.camera_on = value
        await self._report("ProReadonly.cameraState", value)
        return {"cameraOn": value}

    def _data(self, data: bytes, topic: str) -> bytes:
        """Passthrough data: the simulated camera echoes it, upper-cased, with its topic."""
        return json.dumps(
            {"topic": topic, "echo": data.decode("utf-8", "replace").upper()}
        ).encode()

    async def run(self) -> None:
        """Report state and raise events until cancelled."""
        await self.client.start(wait=False)
        while True:  # a camera keeps trying; say why it is not online yet
            try:
                await self.client.wait_online(30)
                break
            except IVError as exc:
                if exc.code != ErrorCode.IVConnError_ConnectFailed:
                    raise  # refused: the cloud does not know or disabled this device
                log.warning("%s; still trying", exc.message)
        await self._report("ProReadonly.cameraState", self.camera_on)
        await self._report("ProReadonly.temperature", round(self.temperature, 2))
        await asyncio.gather(self._temperature_loop(), self._motion_loop())

    async def _report(self, path: str, value: Any) -> None:
        await self._modelled(path, partial(self.client.report, path, value))

    async def _modelled(self, path: str, send: Callable[[], Awaitable[None]]) -> None:
        """Send a report or event unless the product's model lacks ``path``; the first
        time it does, say so and how to publish the model this camera needs. The rest of
        the camera (video, other properties, actions) keeps running."""
        if path in self.unmodelled:
            return
        try:
            await send()
        except IVError as exc:
            if exc.code != ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error:
                raise
            self.unmodelled.add(path)
            log.warning(
                "%s is not in the thing model of product %s, so the camera does not send it. "
                "Publish the simulated camera's model, then restart the camera: "
                "iotvideo vendor publish-model %s",
                path,
                self.client.certificate.product_id,
                self.client.certificate.product_id,
            )

    async def _temperature_loop(self) -> None:
        while True:
            await asyncio.sleep(self.temperature_interval)
            self.temperature = min(60.0, max(-10.0, self.temperature + self.rng.uniform(-0.5, 0.5)))
            reading = round(self.temperature, 2)
            await self._quietly(self._report("ProReadonly.temperature", reading))

    async def _motion_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.motion_interval)
            zone = self.rng.randint(1, 4)
            motion = {"zone": zone, "score": round(self.rng.random(), 2)}
            await self._quietly(
                self._modelled("Event.motion", partial(self.client.event, "motion", motion))
            )
            if self.recorder is not None and self.recorder.recording:
                await self._quietly(self.recorder.event(1))  # bit0: motion

    async def _quietly(self, work: Any) -> None:
        try:
            await work
        except Exception as exc:  # offline for a moment: the client re-sends state later
            log.info("could not send: %s", exc)
