"""The base of every iotvideo entity: its device, and updates from the link's pushes."""

from __future__ import annotations

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .hub import DeviceData, IotVideoHub, signal_of


class IotVideoEntity(Entity):
    """An entity of one device; its state is read from :class:`DeviceData` at each write."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, hub: IotVideoHub, device: DeviceData, key: str) -> None:
        self.hub = hub
        self.device = device
        self._attr_unique_id = f"{device.tid}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, device.tid)},
            name=device.name,
            manufacturer="iotvideo",
            model="camera",
            serial_number=device.tid,
        )

    @property
    def available(self) -> bool:
        return self.device.online

    async def async_added_to_hass(self) -> None:
        self.async_on_remove(
            async_dispatcher_connect(self.hass, signal_of(self.device.tid), self._device_changed)
        )

    @callback
    def _device_changed(self) -> None:
        self.update_from_device()
        self.async_write_ha_state()

    def update_from_device(self) -> None:
        """Copy what the state shows from the device's data (for ``_attr_`` values
        Home Assistant caches); most entities read it as their state is written."""
