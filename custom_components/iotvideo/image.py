"""The newest event picture of each channel, as an image entity: what a notification
shows (``/api/image_proxy/image.<camera>_event_picture``) after a motion event.

The picture is the cloud event's JPEG (taken by the camera when it raised the event,
under a cloud-storage plan); the entity is unknown until the first one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from homeassistant.components.image import ImageEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import IotVideoConfigEntry
from .entity import IotVideoEntity
from .hub import DeviceData, IotVideoHub


async def async_setup_entry(
    hass: HomeAssistant, entry: IotVideoConfigEntry, add: AddEntitiesCallback
) -> None:
    hub = entry.runtime_data
    add(
        EventPicture(hass, hub, device, chn)
        for device in hub.devices.values()
        if device.model.get("Event")
        for chn in device.channels
    )


class EventPicture(IotVideoEntity, ImageEntity):
    _attr_content_type = "image/jpeg"

    def __init__(
        self, hass: HomeAssistant, hub: IotVideoHub, device: DeviceData, channel: int
    ) -> None:
        IotVideoEntity.__init__(self, hub, device, f"picture_{channel}")
        ImageEntity.__init__(self, hass)
        self.channel = channel
        self._attr_name = "Event picture" if channel == 0 else f"Event picture {channel}"
        self._attr_image_url = None

    @property
    def available(self) -> bool:
        return True  # the last picture stays, whether the camera is online or not

    def update_from_device(self) -> None:
        found = self.device.pictures.get(self.channel)
        if found is None or found[0] == self._attr_image_url:
            return
        self._cached_image = None  # a new picture: fetched when next asked for
        self._attr_image_url = found[0]
        self._attr_image_last_updated = datetime.fromtimestamp(found[1], UTC)
