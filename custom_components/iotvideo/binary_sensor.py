"""The device's connectivity (``ProReadonly._online``), motion per channel (the model's
``Event.motion``), and ProReadonly booleans."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import EntityCategory
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import IotVideoConfigEntry
from .entity import IotVideoEntity
from .hub import DeviceData, IotVideoHub
from .model import label, own


async def async_setup_entry(
    hass: HomeAssistant, entry: IotVideoConfigEntry, add: AddEntitiesCallback
) -> None:
    hub = entry.runtime_data
    entities: list[IotVideoEntity] = []
    for device in hub.devices.values():
        entities.append(Connectivity(hub, device))
        if "motion" in device.model.get("Event", {}):
            entities += [Motion(hub, device, chn) for chn in device.channels]
        entities += [
            ReadonlyBool(hub, device, name)
            for name, d in own(device.model.get("ProReadonly", {})).items()
            if d.get("type") == "bool"
        ]
    add(entities)


class Connectivity(IotVideoEntity, BinarySensorEntity):
    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, hub: IotVideoHub, device: DeviceData) -> None:
        super().__init__(hub, device, "online")
        self._attr_name = "Online"

    @property
    def available(self) -> bool:
        return True  # it says whether the device is

    @property
    def is_on(self) -> bool:
        return self.device.online


class Motion(IotVideoEntity, BinarySensorEntity):
    _attr_device_class = BinarySensorDeviceClass.MOTION

    def __init__(self, hub: IotVideoHub, device: DeviceData, channel: int) -> None:
        super().__init__(hub, device, f"motion_{channel}")
        self.channel = channel
        self._attr_name = "Motion" if channel == 0 else f"Motion channel {channel}"

    @property
    def available(self) -> bool:
        return True  # an event may come from a device that went offline since

    @property
    def is_on(self) -> bool:
        return self.channel in self.device.motion


class ReadonlyBool(IotVideoEntity, BinarySensorEntity):
    def __init__(self, hub: IotVideoHub, device: DeviceData, name: str) -> None:
        super().__init__(hub, device, f"r_{name}")
        self.key = name
        self._attr_name = label(name)

    @property
    def is_on(self) -> bool | None:
        value = self.device.value("ProReadonly", self.key)
        return None if value is None else bool(value)
