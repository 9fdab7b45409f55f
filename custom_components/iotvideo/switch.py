"""ProWritable booleans as switches."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import IotVideoConfigEntry
from .entity import IotVideoEntity
from .hub import DeviceData, IotVideoHub
from .model import label, writable


async def async_setup_entry(
    hass: HomeAssistant, entry: IotVideoConfigEntry, add: AddEntitiesCallback
) -> None:
    hub = entry.runtime_data
    add(WritableSwitch(hub, device, name) for device, name, _d in writable(hub, "switch"))


class WritableSwitch(IotVideoEntity, SwitchEntity):
    def __init__(self, hub: IotVideoHub, device: DeviceData, name: str) -> None:
        super().__init__(hub, device, f"w_{name}")
        self.key = name
        self._attr_name = label(name)

    @property
    def is_on(self) -> bool | None:
        value = self.device.value("ProWritable", self.key)
        return None if value is None else bool(value)

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self.hub.write(self.device.tid, self.key, True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.hub.write(self.device.tid, self.key, False)
