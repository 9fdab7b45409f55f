"""Our TC3 signer and verifier agree with the official client's, byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotvideo.v20191126 import iotvideo_client

from iotvideo.protocol import tc3

SECRET_ID, SECRET_KEY = "AKIDexample0000000000000000000000", "secretexamplekey0000000000000000"


def _official(method: str, params: dict[str, Any]) -> RequestInternal:
    """Let the official client build and sign a request, without sending it."""
    http = HttpProfile(protocol="http", endpoint="cloud.example:8080", reqMethod=method)
    client = iotvideo_client.IotvideoClient(
        credential.Credential(SECRET_ID, SECRET_KEY),
        "ap-guangzhou",
        ClientProfile(httpProfile=http),
    )
    req = RequestInternal(client._get_endpoint(), method, "/", header={})
    client._build_req_inter("CreateDevices", params, req)
    return req


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_signature_matches_the_official_client(method: str) -> None:
    req = _official(method, {"ProductId": "P1", "Number": 2, "NamePrefix": "cam中"})
    auth = tc3.Authorization.parse(req.header["Authorization"])
    assert (auth.secret_id, auth.service, auth.signed_headers) == (
        SECRET_ID,
        "iotvideo",
        ("content-type", "host"),
    )
    timestamp = int(req.header["X-TC-Timestamp"])
    assert auth.date == tc3.utc_date(timestamp)
    headers = {"content-type": req.header["Content-Type"], "host": req.header["Host"]}
    body = req.data.encode() if method == "POST" else b""
    ours = tc3.sign(
        SECRET_KEY,
        timestamp=timestamp,
        service="iotvideo",
        method=method,
        uri="/",
        query=req.data if method == "GET" else "",
        headers=headers,
        signed_headers=auth.signed_headers,
        payload=body,
    )
    assert ours == auth.signature


def test_sign_request_builds_what_the_official_client_builds() -> None:
    req = _official("POST", {"ProductId": "P1", "Number": 1})
    timestamp = int(req.header["X-TC-Timestamp"])
    ours = tc3.sign_request(
        SECRET_ID,
        SECRET_KEY,
        action="CreateDevices",
        payload=json.dumps({"ProductId": "P1", "Number": 1}).encode(),
        host="cloud.example:8080",
        timestamp=timestamp,
    )
    for name in ("Authorization", "Content-Type", "Host", "X-TC-Action", "X-TC-Version"):
        assert ours[name] == req.header[name]


def test_authorization_round_trip_and_errors() -> None:
    text = str(
        tc3.Authorization("AKID1", "2026-11-24", "iotvideo", ("content-type", "host"), "a" * 64)
    )
    assert tc3.Authorization.parse(text).secret_id == "AKID1"
    assert str(tc3.Authorization.parse(text)) == text
    for bad in ("", "Basic x", text.replace("a" * 64, "z" * 64), text.replace("content-type;", "")):
        with pytest.raises(ValueError, match=r"Authorization|SignedHeaders"):
            tc3.Authorization.parse(bad)


def test_utc_date() -> None:
    assert tc3.utc_date(0) == "1970-01-01"
    assert tc3.utc_date(1795521196) == "2026-11-24"
