"""The cloud's tables. Times are integer UNIX seconds (UTC), as the vendor API shows them."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AccessToken",
    "ApiKey",
    "AppUser",
    "Base",
    "BindToken",
    "Binding",
    "CloudEvent",
    "CloudInstance",
    "CloudSegment",
    "Device",
    "DeviceLog",
    "DeviceRunLog",
    "DeviceState",
    "IotDataType",
    "IotModel",
    "MessageQueue",
    "OtaVersion",
    "Product",
    "StorageOrder",
    "StorageService",
    "Task",
    "Terminal",
    "Vendor",
]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: BigInteger,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Vendor(Base):
    """A camera vendor: the owner of API keys, products, devices and app users."""

    __tablename__ = "vendors"

    vendor_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[int]
    #: Where apps' send_data-to-server messages are POSTed (empty: not configured).
    webhook_url: Mapped[str] = mapped_column(String(512), default="", server_default="")
    #: Where notifications about the vendor's devices are POSTed (cloud/webhooks.py).
    events_url: Mapped[str] = mapped_column(String(512), default="", server_default="")
    #: The Standard Webhooks secret (``whsec_...``) both webhooks are signed with.
    webhook_secret: Mapped[str] = mapped_column(String(64), default="", server_default="")


class ApiKey(Base):
    """A vendor-API key pair. HMAC verification needs the secret itself, so it is kept."""

    __tablename__ = "api_keys"

    secret_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor_id: Mapped[str] = mapped_column(
        ForeignKey("vendors.vendor_id", ondelete="CASCADE"), index=True
    )
    secret_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int]
    revoked_at: Mapped[int | None]


class Product(Base):
    __tablename__ = "products"

    product_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    vendor_id: Mapped[str] = mapped_column(
        ForeignKey("vendors.vendor_id", ondelete="CASCADE"), index=True
    )
    product_model: Mapped[str] = mapped_column(String(64))
    product_name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(256))
    features: Mapped[list[str]]
    chip_manufacture_id: Mapped[str] = mapped_column(String(64), default="")
    chip_id: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    cate: Mapped[int] = mapped_column(default=0)
    access_mode: Mapped[int] = mapped_column(default=0)
    os: Mapped[str] = mapped_column(String(32), default="")
    chip_arch: Mapped[str] = mapped_column(String(32), default="")
    secret_key: Mapped[str] = mapped_column(String(64))
    iot_model_revision: Mapped[int] = mapped_column(default=0)
    #: The submitted (CreateIotModel) but unpublished model, "" when there is none.
    draft_model: Mapped[str] = mapped_column(Text, default="", server_default="")
    device_seq: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[int]
    #: Creation time in milliseconds: lists show products in the order they were made.
    created_ms: Mapped[int] = mapped_column(index=True)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (Index("uq_devices_product_name", "product_id", "device_name", unique=True),)

    tid: Mapped[str] = mapped_column(String(32), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.product_id", ondelete="CASCADE"))
    vendor_id: Mapped[str] = mapped_column(
        ForeignKey("vendors.vendor_id", ondelete="CASCADE"), index=True
    )
    device_name: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    disabled: Mapped[bool] = mapped_column(default=False)
    #: DisableDeviceStream: no DescribeStream URI opens its video (RunDeviceStream undoes).
    stream_disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    active_time: Mapped[int] = mapped_column(default=0)
    ota_version: Mapped[str] = mapped_column(String(32), default="")
    online: Mapped[int] = mapped_column(default=0)
    last_online_time: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[int]
    #: The cloud instance and link session holding the device while it is online.
    online_instance: Mapped[str] = mapped_column(
        String(32), default="", server_default="", index=True
    )
    online_session: Mapped[str] = mapped_column(String(32), default="", server_default="")
    #: When CreateTraceIds put the device on the trace list (0: not traced): its link
    #: messages are recorded in ``device_logs`` and it uploads its run log.
    traced_since: Mapped[int] = mapped_column(default=0, server_default="0")


class AppUser(Base):
    """An end user of the vendor's app (``AccessId``). Anonymous users have no CunionId."""

    __tablename__ = "app_users"
    __table_args__ = (Index("uq_app_users_cunion", "vendor_id", "cunion_id", unique=True),)

    access_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vendor_id: Mapped[str] = mapped_column(
        ForeignKey("vendors.vendor_id", ondelete="CASCADE"), index=True
    )
    cunion_id: Mapped[str | None] = mapped_column(String(128))
    mobile: Mapped[str] = mapped_column(String(32), default="")
    anonymous: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[int]


class Terminal(Base):
    """One of a user's terminals (phones, tablets...), named by the vendor's UniqueId."""

    __tablename__ = "terminals"
    __table_args__ = (Index("uq_terminals_unique", "access_id", "unique_id", unique=True),)

    terminal_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    access_id: Mapped[str] = mapped_column(ForeignKey("app_users.access_id", ondelete="CASCADE"))
    unique_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int]


class AccessToken(Base):
    """An access token, stored as its SHA-256.

    ``kind`` is ``user`` (CreateUsrToken: the SDK logs in with it), ``device`` (CreateDevToken:
    temporary access to ``tid``), ``anonymous`` (CreateAnonymousAccessToken) or ``binding``
    (returned by CreateBinding, passed to subscribeDevice).
    """

    __tablename__ = "access_tokens"
    __table_args__ = (Index("ix_access_tokens_user_tid", "access_id", "tid"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_id: Mapped[str] = mapped_column(ForeignKey("app_users.access_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    tid: Mapped[str | None] = mapped_column(
        ForeignKey("devices.tid", ondelete="CASCADE"), index=True
    )
    terminal_id: Mapped[str | None] = mapped_column(
        ForeignKey("terminals.terminal_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[int]
    expires_at: Mapped[int]
    revoked_at: Mapped[int | None]


class Binding(Base):
    """A relation between an app user and a device: ``owner`` (at most one) or ``guest``."""

    __tablename__ = "bindings"
    __table_args__ = (
        Index(
            "uq_bindings_owner",
            "tid",
            unique=True,
            sqlite_where=text("role = 'owner'"),
            postgresql_where=text("role = 'owner'"),
        ),
    )

    access_id: Mapped[str] = mapped_column(
        ForeignKey("app_users.access_id", ondelete="CASCADE"), primary_key=True
    )
    tid: Mapped[str] = mapped_column(
        ForeignKey("devices.tid", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(8))
    nick: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[int]


class IotModel(Base):
    """A published revision of a product's thing model (RunIotModel)."""

    __tablename__ = "iot_models"

    product_id: Mapped[str] = mapped_column(
        ForeignKey("products.product_id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int]


class DeviceState(Base):
    """A device's thing-model state tree (see :mod:`iotvideo.protocol.thingmodel`)."""

    __tablename__ = "device_state"

    tid: Mapped[str] = mapped_column(
        ForeignKey("devices.tid", ondelete="CASCADE"), primary_key=True
    )
    doc: Mapped[dict[str, Any]]
    updated_at: Mapped[int]


class Task(Base):
    """A vendor-API request a device answers late (ModifyDeviceAction, SendOnlineMsg)."""

    __tablename__ = "tasks"

    task_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.vendor_id", ondelete="CASCADE"))
    tid: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # pending, done, failed
    result: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(index=True)
    finished_at: Mapped[int | None]


class CloudInstance(Base):
    """A running cloud process; devices held by an instance that stopped beating go offline."""

    __tablename__ = "cloud_instances"

    instance_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    started_at: Mapped[int]
    heartbeat_at: Mapped[int]


class BindToken(Base):
    """A short-lived, single-use token an app hands a device while provisioning it.

    The device presents it when it logs in; CreateBinding with it succeeds only for that
    device and that user, once.
    """

    __tablename__ = "bind_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_id: Mapped[str] = mapped_column(
        ForeignKey("app_users.access_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[int]
    expires_at: Mapped[int] = mapped_column(index=True)
    presented_tid: Mapped[str | None] = mapped_column(String(32))
    presented_at: Mapped[int | None]
    used_at: Mapped[int | None]


class StorageService(Base):
    """A device channel's cloud-storage service: the orders bought for it.

    Its start and end are those of its orders still counted (not refunded, not moved
    away); its status follows from them and the clock (see :mod:`iotvideo.cloud.storage`).
    """

    __tablename__ = "storage_services"

    service_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vendor_id: Mapped[str] = mapped_column(
        ForeignKey("vendors.vendor_id", ondelete="CASCADE"), index=True
    )
    tid: Mapped[str] = mapped_column(ForeignKey("devices.tid", ondelete="CASCADE"))
    chn_num: Mapped[int] = mapped_column(default=0)
    access_id: Mapped[str] = mapped_column(String(32), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[int]
    #: Set when DeliverStorageService moved its orders to another service.
    delivered_to: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_storage_services_tid_chn", "tid", "chn_num"),)


class StorageOrder(Base):
    """One order of a storage package (yc1m3d, yc1m7d, yc1m30d) on a service."""

    __tablename__ = "storage_orders"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("storage_services.service_id", ondelete="CASCADE"), index=True
    )
    pkg_id: Mapped[str] = mapped_column(String(16))
    storage_days: Mapped[int]
    start_time: Mapped[int]
    end_time: Mapped[int]
    created_at: Mapped[int]
    refunded_at: Mapped[int | None]
    #: The order this one was moved from (DeliverStorageService), and where it went.
    moved_from: Mapped[str | None] = mapped_column(String(32))
    moved_to: Mapped[str | None] = mapped_column(String(32))


class OtaVersion(Base):
    """A firmware version of a product: its file (a URL, with size and MD5) and how it is
    published (PubStatus 1 not published, 2 test: to ``tids`` only, 3 official: to
    ``gray_value`` percent of the devices on ``old_versions`` (all when empty), 4
    disabled)."""

    __tablename__ = "ota_versions"

    product_id: Mapped[str] = mapped_column(
        ForeignKey("products.product_id", ondelete="CASCADE"), primary_key=True
    )
    ota_version: Mapped[str] = mapped_column(String(32), primary_key=True)
    vendor_id: Mapped[str] = mapped_column(
        ForeignKey("vendors.vendor_id", ondelete="CASCADE"), index=True
    )
    version_url: Mapped[str] = mapped_column(String(1024))
    file_size: Mapped[int]
    md5: Mapped[str] = mapped_column(String(32))
    operator: Mapped[str] = mapped_column(String(64), default="")
    remark: Mapped[str] = mapped_column(String(256), default="")
    contents: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pub_status: Mapped[int] = mapped_column(default=1)
    gray_value: Mapped[int] = mapped_column(default=0)
    old_versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    tids: Mapped[list[str]] = mapped_column(JSON, default=list)
    upload_time: Mapped[int]
    update_time: Mapped[int]
    publish_time: Mapped[int] = mapped_column(default=0)
    modify_times: Mapped[int] = mapped_column(default=0)


class CloudSegment(Base):
    """A piece of a channel's continuous cloud recording (MPEG-TS, cut at a keyframe)."""

    __tablename__ = "cloud_segments"
    __table_args__ = (
        Index("uq_cloud_segments_start", "tid", "chn_num", "start_ms", unique=True),
        Index("ix_cloud_segments_end", "tid", "chn_num", "end_ms"),
    )

    # SQLite numbers rows only in an INTEGER primary key; PostgreSQL gets a BIGSERIAL.
    segment_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    tid: Mapped[str] = mapped_column(ForeignKey("devices.tid", ondelete="CASCADE"))
    chn_num: Mapped[int]
    start_ms: Mapped[int]
    end_ms: Mapped[int]
    size: Mapped[int]
    path: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int]


class CloudEvent(Base):
    """A device event (motion, sound...: ``alarm_type`` bits) with its picture."""

    __tablename__ = "cloud_events"
    # Pages are read newest first by (start_time, alarm_id): one index range scan.
    __table_args__ = (Index("ix_cloud_events_time", "tid", "chn_num", "start_time", "alarm_id"),)

    # The device chooses its event ids: unique per device, not across the cloud.
    tid: Mapped[str] = mapped_column(
        ForeignKey("devices.tid", ondelete="CASCADE"), primary_key=True
    )
    alarm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    chn_num: Mapped[int]
    alarm_type: Mapped[int]
    first_alarm_type: Mapped[int]
    start_time: Mapped[int]
    end_time: Mapped[int]
    picture: Mapped[str | None] = mapped_column(String(256))
    thumb: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[int]


class DeviceEvent(Base):
    """A thing-model event a device raised, kept for apps that were offline when it was
    pushed (``event.since``): the newest ``KEPT_EVENTS`` per device, for ``KEPT_SECONDS``."""

    __tablename__ = "device_events"
    __table_args__ = (
        Index("ix_device_events_tid", "tid", "seq"),
        # A device sends an event again until acknowledged: a repeat is known by its id.
        Index("uq_device_events_id", "tid", "event_id", unique=True),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    tid: Mapped[str] = mapped_column(ForeignKey("devices.tid", ondelete="CASCADE"))
    event_id: Mapped[str | None] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    t: Mapped[int]


class WebhookMessage(Base):
    """A notification for a vendor's webhook, kept until it is taken (or given up)."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_due", "delivered_at", "failed_at", "next_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    vendor_id: Mapped[str] = mapped_column(ForeignKey("vendors.vendor_id", ondelete="CASCADE"))
    msg_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    next_at: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(default=0)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str] = mapped_column(String(200), default="")
    #: Where it goes: "" the vendor's webhook URL; "stream:<key>" a Redis Stream (a
    #: product's message queue, SetMessageQueue); "webhook:<topic>" the webhook URL with
    #: the queue's topic.
    target: Mapped[str] = mapped_column(String(120), default="", server_default="")


class IotDataType(Base):
    """A vendor's custom data type (CreateIotDataType): a struct a thing model may name."""

    __tablename__ = "iot_data_types"

    vendor_id: Mapped[str] = mapped_column(
        ForeignKey("vendors.vendor_id", ondelete="CASCADE"), primary_key=True
    )
    type_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The type as the vendor gave it (JSON text).
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int]


class DeviceLog(Base):
    """A traced device's link message (CreateTraceIds, DescribeLogs): bounded per device
    and kept for a while (see :mod:`iotvideo.cloud.tracing`)."""

    __tablename__ = "device_logs"
    __table_args__ = (Index("ix_device_logs_tid_at", "tid", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    tid: Mapped[str] = mapped_column(ForeignKey("devices.tid", ondelete="CASCADE"))
    #: UNIX seconds.
    at: Mapped[int]
    #: 1 online state, 2 ProConst, 3 ProWritable, 4 Action, 5 ProReadonly, 6 Event,
    #: 7 other link messages (the op in data_object).
    log_type: Mapped[int] = mapped_column(Integer)
    data_object: Mapped[str] = mapped_column(String(255), default="")
    old_value: Mapped[str] = mapped_column(Text, default="")
    new_value: Mapped[str] = mapped_column(Text, default="")


class DeviceRunLog(Base):
    """The latest lines of a traced device's own log, as it uploaded them (DescribeRunLog)."""

    __tablename__ = "device_runlogs"

    tid: Mapped[str] = mapped_column(
        ForeignKey("devices.tid", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[int]


class MessageQueue(Base):
    """Where a product's device messages are forwarded (SetMessageQueue)."""

    __tablename__ = "message_queues"

    product_id: Mapped[str] = mapped_column(
        ForeignKey("products.product_id", ondelete="CASCADE"), primary_key=True
    )
    vendor_id: Mapped[str] = mapped_column(
        ForeignKey("vendors.vendor_id", ondelete="CASCADE"), index=True
    )
    #: 1 (the reference's CMQ): the vendor's webhook; 2 (CKafka): a Redis Stream.
    queue_type: Mapped[int] = mapped_column(Integer)
    #: The message types forwarded (0..6), as a bit set.
    msg_types: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(32))
    instance: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[int]
    updated_at: Mapped[int]
