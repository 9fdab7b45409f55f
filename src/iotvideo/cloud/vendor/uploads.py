"""Uploads: CreateUploadPath (a signed URL to PUT a firmware file into the cloud's own
store), CreateUploadTest and RenewUploadTest (a device's cloud-recording upload
credential). The grants themselves: :mod:`iotvideo.cloud.uploads`."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from pydantic import Field

from iotvideo.cloud import uploads
from iotvideo.cloud.vendor.api import ActionContext, VendorApi
from iotvideo.cloud.vendor.errors import Code, VendorError
from iotvideo.cloud.vendor.params import Id, Params
from iotvideo.cloud.vendor.storage import PkgId
from iotvideo.protocol.vas import sign_path

__all__ = ["BUCKET", "register"]

#: The bucket and region names upload credentials report: the cloud's own store.
BUCKET = "iotvideo"
REGION = "local"


class CreateUploadPathParams(Params):
    ProductId: Id
    FileName: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z._-]+$")]


class CreateUploadTestParams(Params):
    PkgId: PkgId
    Tid: Id


class RenewUploadTestParams(Params):
    PkgId: PkgId
    Tid: Id
    SessionKey: Annotated[str, Field(min_length=1, max_length=256)]


async def create_upload_path(ctx: ActionContext, p: CreateUploadPathParams) -> dict[str, Any]:
    await ctx.product(p.ProductId)
    name = uploads.firmware_name(p.FileName, secrets.token_hex(16))
    path = f"/firmware/{name}"
    expires = ctx.now + uploads.UPLOAD_URL_TTL
    signature = sign_path(ctx.live.url_secret, path, expires)
    return {"Data": f"{ctx.public_base()}{path}?exp={expires}&sig={signature}"}


def _certificate(ctx: ActionContext, tid: str) -> dict[str, Any]:
    expires = ctx.now + uploads.CREDENTIAL_TTL
    token = uploads.upload_token(ctx.live.url_secret, tid, expires)
    return {
        # The store checks the Token alone; the key pair is there for clients that read it.
        "SecretId": "upl" + token[-24:],
        "SecretKey": token[-64:-24],
        "Token": token,
        "ExpiredTime": expires,
    }


async def create_upload_test(ctx: ActionContext, p: CreateUploadTestParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    return {
        "Data": {
            "StorageBucket": BUCKET,
            "StorageRegion": REGION,
            "StoragePath": f"/vas/{device.tid}/",
            "TempCertificate": _certificate(ctx, device.tid),
            "SessionKey": uploads.session_key(ctx.live.url_secret, device.tid, p.PkgId, ctx.now),
        }
    }


async def renew_upload_test(ctx: ActionContext, p: RenewUploadTestParams) -> dict[str, Any]:
    device = await ctx.device(p.Tid)
    if not uploads.check_session_key(
        ctx.live.url_secret, p.SessionKey, device.tid, p.PkgId, ctx.now
    ):
        raise VendorError(
            Code.INVALID_PARAMETER_VALUE,
            "The SessionKey is not one CreateUploadTest gave for this Tid and PkgId in the "
            f"last {uploads.SESSION_TTL // 3600} hours; call CreateUploadTest again.",
        )
    return {"Data": {"TempCertificate": _certificate(ctx, device.tid)}}


def register(api: VendorApi) -> None:
    api.add("CreateUploadPath", CreateUploadPathParams, create_upload_path, writes=False)
    api.add("CreateUploadTest", CreateUploadTestParams, create_upload_test, writes=False)
    api.add("RenewUploadTest", RenewUploadTestParams, renew_upload_test, writes=False)
