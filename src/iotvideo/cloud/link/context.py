"""What link sessions share within one cloud process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from iotvideo.cloud.db import Database
from iotvideo.cloud.limits import Limits
from iotvideo.cloud.link.hub import Hub
from iotvideo.cloud.link.logins import LoginKeys
from iotvideo.cloud.metrics import Metrics
from iotvideo.cloud.outages import Outages
from iotvideo.cloud.settings import CloudSettings
from iotvideo.cloud.things import Things

if TYPE_CHECKING:
    from iotvideo.cloud.link.messaging import Messaging

__all__ = ["LinkContext"]


@dataclass
class LinkContext:
    settings: CloudSettings
    db: Database
    things: Things
    hub: Hub
    messaging: Messaging
    http: httpx.AsyncClient
    clock: Callable[[], float]
    limits: Limits
    outages: Outages = field(default_factory=Outages)
    metrics: Metrics = field(default_factory=Metrics)
    #: The key of the cloud's signed URLs (HLS, pictures, firmware uploads).
    url_secret: bytes = b""
    #: Device logins' keys, read together.
    logins: LoginKeys = field(init=False)

    def __post_init__(self) -> None:
        self.logins = LoginKeys(self.db)

    def now(self) -> int:
        return int(self.clock())
