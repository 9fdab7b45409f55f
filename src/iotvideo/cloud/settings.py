"""The cloud's settings: flags override ``IOTVIDEO_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CloudSettings"]


class CloudSettings(BaseSettings):
    """Settings of one cloud process.

    Every field can be set by an environment variable named ``IOTVIDEO_<FIELD>``
    (``IOTVIDEO_DATA``, ``IOTVIDEO_DB``, ``IOTVIDEO_PORT``...); command-line flags win.
    """

    model_config = SettingsConfigDict(env_prefix="IOTVIDEO_", extra="ignore")

    data: Path = Field(description="Data directory: SQLite file, blobs, logs.")
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    db: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the database: sqlite+aiosqlite:///FILE or "
            "postgresql+asyncpg://USER@HOST/DB[?search_path=SCHEMA]. Default: a SQLite "
            "file in the data directory."
        ),
    )
    max_body_bytes: int = Field(
        1 << 20, ge=1024, description="Largest vendor-API request body accepted, in bytes."
    )
    signature_max_skew: int = Field(
        300, ge=1, description="Seconds a request's X-TC-Timestamp may differ from our clock."
    )
    signature_repeat_window: float = Field(
        2,
        ge=0,
        description="Seconds after its first use during which a vendor-API signature is "
        "accepted again (identical requests in one second); later it is a replay. 0: "
        "never again (when every client signs X-TC-Action).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or as one JSON object each (time, level, logger, "
        "message, exc) for a log collector.",
    )
    access_log: bool = Field(False, description="Log every HTTP request (uvicorn's access log).")
    metrics_token: str | None = Field(
        None,
        description="Bearer token that lets non-loopback clients read /metrics (empty: "
        "loopback clients only).",
    )
    db_pool: int = Field(
        20,
        ge=1,
        le=1000,
        description="PostgreSQL connections an instance keeps (a burst waits for one): "
        "instances x db_pool must stay under the server's max_connections.",
    )
    bus: str = Field(
        "memory",
        description="Bus between cloud instances: 'memory' (one process) or redis://HOST:PORT/DB.",
    )
    login_timeout: float = Field(10, gt=0, description="Seconds a link peer has to log in.")
    link_idle_timeout: float = Field(
        90, gt=0, description="Seconds of silence after which a link session is closed."
    )
    link_send_timeout: float = Field(
        20,
        gt=0,
        description="Seconds a frame may wait to be sent to a peer that does not read; "
        "then the connection is dropped.",
    )
    device_timeout: float = Field(
        8, gt=0, description="Seconds the cloud waits for a device to answer a request."
    )
    vendor_device_wait: float = Field(
        5,
        gt=0,
        description="Seconds a vendor-API request waits for a device before it "
        "answers with a TaskId (ModifyDeviceAction, SendOnlineMsg).",
    )
    heartbeat_interval: float = Field(
        10, gt=0, description="Seconds between this instance's liveness beats."
    )
    purge_interval: float = Field(
        3600, gt=0, description="Seconds between purges of long-dead access tokens."
    )

    ice_urls: list[str] = Field(
        default_factory=list,
        description=(
            "STUN/TURN URLs handed to peers for media, e.g. "
            "turn:turn.example:3478?transport=udp (JSON list in the environment). Empty: "
            "peers use their host candidates only."
        ),
    )
    turn_secret: str | None = Field(
        None,
        description="Shared secret of the TURN servers (coturn's static-auth-secret): "
        "peers get short-lived credentials made with it (TURN REST API).",
    )
    turn_ttl: int = Field(
        600, ge=30, description="Seconds the TURN credentials handed to peers stay valid."
    )

    restream_urls: list[str] = Field(
        default_factory=list,
        description=(
            "Restream servers DescribeStream hands out URIs on: each one's RTSP base "
            "(rtsp://host:8554) and HLS base (http://host:8556), several for a pool (JSON "
            "list in the environment). Empty: DescribeStream answers ResourceUnavailable."
        ),
    )
    stream_ttl: int = Field(
        3600, ge=60, le=86_400, description="Seconds a DescribeStream URI opens new pulls."
    )
    stream_key: str | None = Field(
        None,
        description="Ed25519 private key (base64 of its 32-byte seed) that signs "
        "DescribeStream URIs, for several instances (default: one kept in the data "
        "directory). Restream servers get the public half at /restream/key.",
    )
    url_secret: str | None = Field(
        None,
        description="Key of the signed playlist and segment URLs (default: one kept in the "
        "data directory).",
    )
    retention_interval: float = Field(
        600, gt=0, description="Seconds between deletions of recordings no plan keeps."
    )
    url_ttl: int = Field(3600, ge=10, description="Seconds a signed playback URL stays valid.")

    vendor_rate: float = Field(
        200, gt=0, description="Vendor-API requests per second per key (bursts of twice that)."
    )
    login_rate: float = Field(
        50,
        gt=0,
        description="Link logins per second from one address (bursts of ten times that); "
        "more are told to retry later.",
    )
    link_rate: float = Field(
        100, gt=0, description="Link requests per second per session (bursts of twice that)."
    )
    max_pending_links: int = Field(
        1000, ge=1, description="Link connections that have not logged in yet, at most."
    )
    max_pending_per_address: int = Field(
        100,
        ge=1,
        description="Link connections from one client address that have not logged in yet, "
        "at most (the forwarded client's behind a trusted proxy).",
    )
    max_bind_tokens: int = Field(
        20, ge=1, description="Unexpired, unused bind tokens one user may hold."
    )

    tls_cert: Path | None = Field(
        None,
        description="PEM certificate chain for HTTPS and wss:// (reloaded on SIGHUP). "
        "Without it the cloud speaks plain HTTP: for loopback, or behind a TLS proxy.",
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    public_url: str | None = Field(
        None,
        description="The cloud's URL as clients reach it (behind a reverse proxy): used "
        "for every URL the cloud hands out. Default: the URL of each request.",
    )

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to ``<data>/iotvideo.db``."""
        if self.db:
            return self.db
        return f"sqlite+aiosqlite:///{(self.data / 'iotvideo.db').resolve()}"
