"""ProReadonly values as sensors (units kept from the model)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import IotVideoConfigEntry
from .entity import IotVideoEntity
from .hub import DeviceData, IotVideoHub
from .model import NUMBERS, label, own, unit_of

_CLASSES = {"°C": SensorDeviceClass.TEMPERATURE, "°F": SensorDeviceClass.TEMPERATURE}


async def async_setup_entry(
    hass: HomeAssistant, entry: IotVideoConfigEntry, add: AddEntitiesCallback
) -> None:
    hub = entry.runtime_data
    add(
        ReadonlySensor(hub, device, name, d)
        for device in hub.devices.values()
        for name, d in own(device.model.get("ProReadonly", {})).items()
        if d.get("type") in NUMBERS | {"string"} and not _channel(name)
    )


def _channel(name: str) -> bool:
    return name.startswith("chn") and name[3:].isdigit()  # a gateway's channel: a camera


class ReadonlySensor(IotVideoEntity, SensorEntity):
    def __init__(
        self, hub: IotVideoHub, device: DeviceData, name: str, definition: dict[str, Any]
    ) -> None:
        super().__init__(hub, device, f"r_{name}")
        self.key = name
        self._attr_name = label(name)
        numeric = definition.get("type") in NUMBERS and not definition.get("enum")
        unit = unit_of(definition)
        self._attr_native_unit_of_measurement = unit if numeric else None
        self._attr_state_class = SensorStateClass.MEASUREMENT if numeric else None
        self._attr_device_class = _CLASSES.get(unit or "") if numeric else None

    @property
    def native_value(self) -> Any:
        value = self.device.value("ProReadonly", self.key)
        return value if isinstance(value, int | float | str) else None
