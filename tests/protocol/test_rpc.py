"""The one request/reply core of the link (sans-IO), as every side uses it."""

from __future__ import annotations

import pytest

from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Reply
from iotvideo.protocol.rpc import DEVICE_FAILED, INTERNAL_ERROR, Outstanding, reply_to, result_of


def test_exceptions_become_codes_in_one_place() -> None:
    assert reply_to(7, {"value": 1}) == Reply(7, 0, {"value": 1})
    refused = reply_to(7, IVError.of(ErrorCode.IVASrvErr_dst_offline, "offline"))
    assert (refused.code, refused.msg) == (8000, "offline")
    crashed = reply_to(7, KeyError("secret detail"))
    assert crashed.code == INTERNAL_ERROR and "secret" not in crashed.msg
    assert reply_to(7, KeyError("x"), fallback=DEVICE_FAILED).code == 20103


def test_replies_back_to_results() -> None:
    assert result_of(Reply(1, 0, {"a": 1})) == {"a": 1}
    with pytest.raises(IVError) as refused:
        result_of(Reply(1, 8003, msg="no relation"))
    assert refused.value.code == 8003


def test_the_outstanding_table() -> None:
    table: Outstanding[str] = Outstanding()
    first, second = table.add("a"), table.add("b")
    assert (first, second) == (1, 2) and len(table) == 2
    assert table.take(first) == "a"
    assert table.take(first) is None  # a late or repeated reply finds nothing
    assert table.take(99) is None
    assert table.take_all() == ["b"] and len(table) == 0
    assert table.add("c") == 3  # ids are never reused on a connection
