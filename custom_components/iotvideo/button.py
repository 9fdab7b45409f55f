"""Actions as buttons: one per value of an Action's enumeration (one sending 1, or true,
for an Action without one)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.button import ButtonEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import IotVideoConfigEntry
from .entity import IotVideoEntity
from .hub import DeviceData, IotVideoHub
from .model import label, own


async def async_setup_entry(
    hass: HomeAssistant, entry: IotVideoConfigEntry, add: AddEntitiesCallback
) -> None:
    hub = entry.runtime_data
    entities = []
    for device in hub.devices.values():
        for name, d in own(device.model.get("Action", {})).items():
            values = d.get("enum") or [True if d.get("type") == "bool" else 1]
            entities += [ActionButton(hub, device, name, v, len(values) > 1) for v in values]
    add(entities)


class ActionButton(IotVideoEntity, ButtonEntity):
    def __init__(
        self, hub: IotVideoHub, device: DeviceData, name: str, value: Any, several: bool
    ) -> None:
        super().__init__(hub, device, f"a_{name}_{value}")
        self.key, self.value = name, value
        self._attr_name = f"{label(name)} {value}" if several else label(name)

    async def async_press(self) -> None:
        await self.hub.action(self.device.tid, self.key, self.value)
