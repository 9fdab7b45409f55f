"""The tables as SQLAlchemy Core objects, for queries.

The declarative classes in :mod:`iotvideo.cloud.db.models` define the schema (and feed
Alembic); request handlers query these tables with Core statements, which cost a fraction
of the ORM's bookkeeping on a hot path.
"""

from __future__ import annotations

from typing import Any, TypeAlias, cast

from sqlalchemy import Row, Table

from iotvideo.cloud.db import models

__all__ = [
    "AnyRow",
    "access_tokens",
    "api_keys",
    "app_users",
    "bind_tokens",
    "bindings",
    "cloud_events",
    "cloud_instances",
    "cloud_segments",
    "device_events",
    "device_logs",
    "device_runlogs",
    "device_state",
    "devices",
    "iot_data_types",
    "iot_models",
    "message_queues",
    "ota_versions",
    "products",
    "storage_orders",
    "storage_services",
    "tasks",
    "terminals",
    "vendors",
    "webhook_outbox",
]

#: A result row of any width; columns are read as attributes (``row.tid``).
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

vendors = cast(Table, models.Vendor.__table__)
api_keys = cast(Table, models.ApiKey.__table__)
products = cast(Table, models.Product.__table__)
devices = cast(Table, models.Device.__table__)
app_users = cast(Table, models.AppUser.__table__)
terminals = cast(Table, models.Terminal.__table__)
access_tokens = cast(Table, models.AccessToken.__table__)
bindings = cast(Table, models.Binding.__table__)
iot_models = cast(Table, models.IotModel.__table__)
device_state = cast(Table, models.DeviceState.__table__)
tasks = cast(Table, models.Task.__table__)
cloud_instances = cast(Table, models.CloudInstance.__table__)
bind_tokens = cast(Table, models.BindToken.__table__)
storage_services = cast(Table, models.StorageService.__table__)
storage_orders = cast(Table, models.StorageOrder.__table__)
ota_versions = cast(Table, models.OtaVersion.__table__)
cloud_segments = cast(Table, models.CloudSegment.__table__)
cloud_events = cast(Table, models.CloudEvent.__table__)
device_events = cast(Table, models.DeviceEvent.__table__)
webhook_outbox = cast(Table, models.WebhookMessage.__table__)
iot_data_types = cast(Table, models.IotDataType.__table__)
device_logs = cast(Table, models.DeviceLog.__table__)
device_runlogs = cast(Table, models.DeviceRunLog.__table__)
message_queues = cast(Table, models.MessageQueue.__table__)
