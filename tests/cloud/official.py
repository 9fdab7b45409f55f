"""The official Tencent Cloud client, pointed at a test cloud."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotvideo.v20191126 import iotvideo_client, models

from tests.support import CloudAddress


def client(cloud: CloudAddress, key: tuple[str, str], *, method: str = "POST") -> Any:
    protocol = "https" if cloud.url.startswith("https://") else "http"
    # A test's own CA (tests/tls.py), where the test trusts one.
    ca = os.environ.get("SSL_CERT_FILE") if protocol == "https" else None
    http = HttpProfile(
        protocol=protocol, endpoint=cloud.endpoint, reqMethod=method, certification=ca
    )
    return iotvideo_client.IotvideoClient(
        credential.Credential(*key), "ap-guangzhou", ClientProfile(httpProfile=http)
    )


def call(c: Any, action: str, **fields: Any) -> Any:
    """Call ``action`` through the official client with a request model built from fields."""
    request = getattr(models, f"{action}Request")()
    request._deserialize(fields)
    return getattr(c, action)(request)


def refused(
    code: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> TencentCloudSDKException:
    """Assert the call fails with the vendor-API error ``code``."""
    with pytest.raises(TencentCloudSDKException) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value
    assert info.value.requestId
    return info.value
