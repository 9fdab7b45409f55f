"""Live stream addresses: DescribeStream, RunDeviceStream, DisableDeviceStream.

DescribeStream answers a URI on one of the restream servers the cloud is configured with
(``--restream-url``), carrying a ticket the cloud signed (protocol/stream.py): the
device, its first channel, the protocol, the AccessId and when it expires. The restream
server checks the ticket with the cloud's public key before it pulls anything, then signs
in with it. DisableDeviceStream refuses new tickets and ends the pulls made with them.
"""

from __future__ import annotations

import zlib
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import and_, select, update

from iotvideo.cloud.access import find_token
from iotvideo.cloud.db.tables import bindings, devices
from iotvideo.cloud.streams import stream_key
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError
from iotvideo.cloud.vendor.params import PRINTABLE, Id, IdList, Opaque, Params
from iotvideo.protocol.stream import PROTOCOLS, StreamClaim, sign_ticket
from iotvideo.protocol.tokens import hash_token

__all__ = ["register"]

#: DescribeStream's protocols (the client's list); RTMP and HLS-fmp4 are not served.
ALL_PROTOCOLS = ("RTSP", "RTMP", "HLS", "HLS-fmp4")


class DescribeStreamParams(Params):
    Tid: Id
    AccessId: Id
    Protocol: Annotated[str, Field(min_length=1, max_length=16), PRINTABLE]
    Address: Annotated[str, Field(max_length=512), PRINTABLE] | None = None
    AccessToken: Opaque | None = None


class TidsParams(Params):
    Tids: IdList


def _base(ctx: ActionContext, protocol: str, tid: str, address: str | None) -> str:
    """The restream server for ``tid``: a configured base of the protocol's scheme,
    chosen by the Tid (a device keeps its server), or ``address`` when it is one."""
    settings = ctx.live.settings
    schemes = ("rtsp://",) if protocol == "RTSP" else ("http://", "https://")
    pool = [u.rstrip("/") for u in settings.restream_urls if u.startswith(schemes)]
    if not pool:
        raise VendorError(
            Code.RESOURCE_UNAVAILABLE,
            f"no restream server for {protocol} is configured; start the cloud with "
            f"--restream-url ({'rtsp://HOST:8554' if protocol == 'RTSP' else 'http://HOST:8556'})",
        )
    if address:
        if address.rstrip("/") not in pool:
            raise VendorError(
                Code.INVALID_PARAMETER_VALUE,
                f"Address {address!r} is not one of the configured restream servers: "
                f"{', '.join(pool)}",
            )
        return address.rstrip("/")
    return pool[zlib.crc32(tid.encode()) % len(pool)]


async def describe_stream(ctx: ActionContext, p: DescribeStreamParams) -> dict[str, Any]:
    if p.Protocol not in ALL_PROTOCOLS:
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE, f"Protocol: one of {', '.join(ALL_PROTOCOLS)}"
        )
    if p.Protocol not in PROTOCOLS:
        raise VendorError(
            Code.UNSUPPORTED_OPERATION,
            f"{p.Protocol} is not served; ask for {' or '.join(PROTOCOLS)} (docs/restream.md)",
        )
    device = await ctx.device(p.Tid)
    await ctx.user(p.AccessId)
    bound = await ctx.conn.scalar(
        select(bindings.c.role).where(
            and_(bindings.c.tid == device.tid, bindings.c.access_id == p.AccessId)
        )
    )
    token_hash = ""
    if bound is None:
        token = await find_token(ctx.conn, p.AccessToken, now=ctx.now) if p.AccessToken else None
        if token is None or token.access_id != p.AccessId or token.tid != device.tid:
            raise VendorError(
                Code.UNAUTHORIZED_OPERATION,
                f"AccessId {p.AccessId} is not bound to {p.Tid}; bind it (CreateBinding) or "
                "pass a live AccessToken that grants the device (CreateDevToken)",
            )
        token_hash = hash_token(p.AccessToken or "")
    if device.disabled:
        raise VendorError(Code.OPERATION_DENIED, f"device {p.Tid} is disabled (RunDevice)")
    if device.stream_disabled:
        raise VendorError(
            Code.OPERATION_DENIED,
            f"streaming is disabled for {p.Tid} (DisableDeviceStream); RunDeviceStream allows it",
        )
    base = _base(ctx, p.Protocol, device.tid, p.Address)
    settings = ctx.live.settings
    expires = ctx.now + settings.stream_ttl
    claim = StreamClaim(device.tid, "", p.Protocol, p.AccessId, expires, token_hash)
    ticket = sign_ticket(stream_key(settings.data, settings.stream_key), claim)
    path = f"/{device.tid}" if p.Protocol == "RTSP" else f"/{device.tid}/index.m3u8"
    return {
        "Data": {
            "Protocol": p.Protocol,
            "URI": f"{base}{path}?ticket={ticket}",
            "ExpireTime": expires,
            "VideoCodec": "H264",
            # HLS carries AAC; RTSP the device's G.711 or AAC for Opus (its SDP says).
            "AudioCodec": "AAC" if p.Protocol == "HLS" else "",
        }
    }


async def _set_stream(ctx: ActionContext, tids: list[str], disabled: bool) -> list[str]:
    found = [d.tid for d in await ctx.devices(tids)]
    await ctx.conn.execute(
        update(devices).where(devices.c.tid.in_(found)).values(stream_disabled=disabled)
    )
    return found


async def run_device_stream(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    await _set_stream(ctx, p.Tids, False)
    return {}


async def disable_device_stream(ctx: ActionContext, p: TidsParams) -> dict[str, Any]:
    for tid in await _set_stream(ctx, p.Tids, True):
        ctx.end_streams(tid)
    return {}


def register(api: VendorApi) -> None:
    api.add("DescribeStream", DescribeStreamParams, describe_stream, writes=False)
    api.add("RunDeviceStream", TidsParams, run_device_stream)
    api.add("DisableDeviceStream", TidsParams, disable_device_stream)
