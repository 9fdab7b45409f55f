"""ProWritable strings as text entities."""

from __future__ import annotations

from typing import Any

from homeassistant.components.text import TextEntity
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
    add(WritableText(hub, device, name, d) for device, name, d in writable(hub, "text"))


class WritableText(IotVideoEntity, TextEntity):
    def __init__(
        self, hub: IotVideoHub, device: DeviceData, name: str, definition: dict[str, Any]
    ) -> None:
        super().__init__(hub, device, f"w_{name}")
        self.key = name
        self._attr_name = label(name)
        self._attr_native_max = int(definition.get("max", 64))

    @property
    def native_value(self) -> str | None:
        value = self.device.value("ProWritable", self.key)
        return None if value is None else str(value)

    async def async_set_value(self, value: str) -> None:
        await self.hub.write(self.device.tid, self.key, value)
