"""ProWritable enumerations as selects."""

from __future__ import annotations

from typing import Any

from homeassistant.components.select import SelectEntity
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
    add(WritableSelect(hub, device, name, d) for device, name, d in writable(hub, "select"))


class WritableSelect(IotVideoEntity, SelectEntity):
    def __init__(
        self, hub: IotVideoHub, device: DeviceData, name: str, definition: dict[str, Any]
    ) -> None:
        super().__init__(hub, device, f"w_{name}")
        self.key = name
        self._attr_name = label(name)
        self._values: list[Any] = list(definition["enum"])
        self._attr_options = [str(v) for v in self._values]

    @property
    def current_option(self) -> str | None:
        value = self.device.value("ProWritable", self.key)
        return None if value is None else str(value)

    async def async_select_option(self, option: str) -> None:
        value = self._values[self._attr_options.index(option)]
        await self.hub.write(self.device.tid, self.key, value)
