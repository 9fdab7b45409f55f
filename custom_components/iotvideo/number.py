"""ProWritable numbers as number entities (bounds and unit from the model)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.number import NumberEntity, NumberMode
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import IotVideoConfigEntry
from .entity import IotVideoEntity
from .hub import DeviceData, IotVideoHub
from .model import INTEGERS, label, unit_of, writable

_DEFAULT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}


async def async_setup_entry(
    hass: HomeAssistant, entry: IotVideoConfigEntry, add: AddEntitiesCallback
) -> None:
    hub = entry.runtime_data
    add(WritableNumber(hub, device, name, d) for device, name, d in writable(hub, "number"))


class WritableNumber(IotVideoEntity, NumberEntity):
    _attr_mode = NumberMode.BOX

    def __init__(
        self, hub: IotVideoHub, device: DeviceData, name: str, definition: dict[str, Any]
    ) -> None:
        super().__init__(hub, device, f"w_{name}")
        self.key = name
        self._attr_name = label(name)
        kind = definition.get("type", "float64")
        self._integer = kind in INTEGERS
        low, high = _DEFAULT_BOUNDS.get(kind, (-1e9, 1e9))
        self._attr_native_min_value = float(definition.get("min", low))
        self._attr_native_max_value = float(definition.get("max", high))
        self._attr_native_step = 1.0 if self._integer else 0.1
        self._attr_native_unit_of_measurement = unit_of(definition)

    @property
    def native_value(self) -> float | None:
        value = self.device.value("ProWritable", self.key)
        return float(value) if isinstance(value, int | float) else None

    async def async_set_native_value(self, value: float) -> None:
        await self.hub.write(self.device.tid, self.key, int(value) if self._integer else value)
