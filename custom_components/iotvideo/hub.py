"""One config entry's link to the platform: the app SDK signed in as the entry's user,
the devices it may see with their thing models and values, kept current by the link's
pushes (no polling)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send

from iotvideo.app import IoTVideo
from iotvideo.app.messages import DeviceMessage
from iotvideo.app.status import LinkStatus
from iotvideo.protocol.errors import IVError

from .const import EVENT_IOTVIDEO, MOTION_HOLD, PICTURE_WAITS

_LOGGER = logging.getLogger(__name__)


def signal_of(tid: str) -> str:
    """The dispatcher signal of a device's changes."""
    return f"iotvideo_update_{tid}"


@dataclass
class DeviceData:
    """What the integration knows of one device."""

    tid: str
    #: The device's product model: section -> name -> definition.
    model: dict[str, dict[str, Any]]
    #: Its state tree: section -> name -> object ({"stVal", "setVal", "t"...}).
    state: dict[str, Any]
    #: Motion by channel: when it started and until when it holds (monotonic), while on.
    motion: dict[int, float] = field(default_factory=dict)
    #: The newest event picture by channel: (its URL, the event's UNIX time).
    pictures: dict[int, tuple[str, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """ProUser._buildIn's nickName, else the Tid."""
        built_in = (self.state.get("ProUser") or {}).get("_buildIn") or {}
        nick = (built_in.get("val") or {}).get("nickName")
        return str(nick) if nick else self.tid

    def value(self, section: str, name: str) -> Any:
        obj = (self.state.get(section) or {}).get(name)
        return obj.get("stVal") if isinstance(obj, dict) else None

    @property
    def online(self) -> bool:
        return self.value("ProReadonly", "_online") in (1, 2)

    @property
    def channels(self) -> list[int]:
        """Its video channels: ``ProReadonly.chn1..N`` of a gateway's model, else one."""
        found = sorted(
            int(name[3:])
            for name in self.model.get("ProReadonly", {})
            if name.startswith("chn") and name[3:].isdigit()
        )
        return found or [0]


class IotVideoHub:
    """The entry's SDK and devices."""

    def __init__(
        self,
        hass: HomeAssistant,
        cloud_url: str,
        access_id: str,
        access_token: str,
        *,
        on_token_failed: Callable[[], None] | None = None,
    ) -> None:
        self.hass = hass
        self.cloud_url = cloud_url
        self.access_id = access_id
        self._access_token = access_token
        self.sdk = IoTVideo()
        self.sdk.setup(cloud_url)
        self.devices: dict[str, DeviceData] = {}
        self._on_token_failed = on_token_failed
        self._removers: list[Callable[[], None]] = []
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self._picture_tasks: dict[tuple[str, int], asyncio.Task[None]] = {}

    async def connect(self, timeout: float = 15.0) -> None:
        """Sign in and load every device's model and values; raises IVError (20010: the
        token was refused; 21022: the cloud could not be reached)."""
        await self.sdk.register(self.access_id, self._access_token, timeout=timeout, fail_fast=True)
        self._removers.append(self.sdk.message.add_listener(self._on_message))
        self.sdk.add_status_listener(self._on_status)
        # Every device's model and values at once: one round trip's wait, not two per device.
        await asyncio.gather(*(self._load(str(t)) for t in self.sdk.login_reply.get("devices", [])))

    async def _load(self, tid: str) -> None:
        model = (await self.sdk.request("model.get", {"tid": tid})).get("model") or {}
        state = await self.sdk.message.read_property(tid, "")
        self.devices[tid] = DeviceData(tid, model, state if isinstance(state, dict) else {})

    async def close(self) -> None:
        """Stop listening and sign out (the entry unloads)."""
        for remove in self._removers:
            remove()
        self._removers.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._picture_tasks.values()):
            task.cancel()
        for task in list(self._picture_tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.sdk.unregister()
        except IVError as exc:
            _LOGGER.debug("signing out: %s", exc)

    # Pushes

    @callback
    def _on_status(self, status: LinkStatus) -> None:
        if status is LinkStatus.TOKEN_FAILED and self._on_token_failed is not None:
            self._on_token_failed()

    @callback
    def _on_message(self, message: DeviceMessage) -> None:
        device = self.devices.get(message.device_id)
        if device is None:
            return
        if message.kind == "property":
            section, _, name = message.name.partition(".")
            if "." in name:  # a deeper path: reload the object on the next full read
                name = name.split(".", 1)[0]
            device.state.setdefault(section, {})[name] = message.value
        elif message.kind == "event":
            self._on_event(device, message)
        async_dispatcher_send(self.hass, signal_of(device.tid))

    def _on_event(self, device: DeviceData, message: DeviceMessage) -> None:
        value = message.value if isinstance(message.value, dict) else {}
        channel = int(value.get("chn", 0) or 0)
        picture = value.get("imgUrl") or value.get("picture") or ""
        self.hass.bus.async_fire(
            EVENT_IOTVIDEO,
            {
                "tid": device.tid,
                "channel": channel,
                "topic": message.name,
                "value": message.value,
                "type": int(value.get("type", value.get("alarmType", 1)) or 1),
                "picture": picture,
                "t": message.t,
            },
        )
        device.state.setdefault("Event", {})[message.name] = {
            "stVal": message.value,
            "t": message.t,
        }
        if not value.get("end"):
            self._look_for_picture(device, channel, message.t)
        if message.name != "motion":
            return
        key = (device.tid, channel)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if value.get("end"):
            device.motion.pop(channel, None)
            return
        device.motion[channel] = time.monotonic()

        def hold_over() -> None:
            self._timers.pop(key, None)
            device.motion.pop(channel, None)
            async_dispatcher_send(self.hass, signal_of(device.tid))

        self._timers[key] = self.hass.loop.call_later(MOTION_HOLD, hold_over)

    # Event pictures

    def _look_for_picture(self, device: DeviceData, channel: int, t: int) -> None:
        """The cloud keeps a picture of an event the camera records (under a cloud-storage
        plan); it arrives a moment after the event: look for it, in the background."""
        key = (device.tid, channel)
        if key in self._picture_tasks:
            return
        task = self.hass.async_create_background_task(
            self._fetch_picture(device, channel, t), name=f"iotvideo picture {device.tid}"
        )
        self._picture_tasks[key] = task
        task.add_done_callback(lambda _task: self._picture_tasks.pop(key, None))

    async def _fetch_picture(self, device: DeviceData, channel: int, t: int) -> None:
        for delay in PICTURE_WAITS:
            await asyncio.sleep(delay)
            try:
                listed = await self.sdk.vas.get_event_list(
                    device.tid, t - 60, t + 60, page_size=5, source_id=channel
                )
            except IVError as exc:  # no cloud storage (403): no pictures
                _LOGGER.debug("no event pictures for %s: %s", device.tid, exc)
                return
            prefix = listed.get("imgUrlPrefix", "")
            for event in listed.get("list", []):
                suffix = event.get("imgUrlSuffix")
                if not suffix:
                    continue
                when = int(event.get("startTime", 0))
                if when >= device.pictures.get(channel, ("", 0))[1]:
                    device.pictures[channel] = (prefix + suffix, when)
                    async_dispatcher_send(self.hass, signal_of(device.tid))
                return

    # Commands

    async def write(self, tid: str, name: str, value: Any) -> None:
        await self.sdk.message.write_property(tid, f"ProWritable.{name}", {"setVal": value})

    async def action(self, tid: str, name: str, value: Any) -> Any:
        return await self.sdk.message.take_action(tid, f"Action.{name}", {"ctlVal": value})
