"""The request/reply core of the link, one copy for every side (sans-IO: no sockets, no
tasks, no clock). The app and device SDKs (``iotvideo.transport``) and the cloud's
sessions (``iotvideo.cloud.link``) are thin adapters around it.

- :class:`Outstanding`: the requests a side sent and still waits for, by id: numbering,
  the table, matching a reply to its waiter, failing every waiter when the connection
  goes;
- :func:`reply_to`: the reply to a request from its handler's result or exception, the one
  place an exception becomes a code (an :class:`IVError` keeps its own; anything else is
  the side's ``fallback``, with no detail for the peer: 20140, an internal error, in the
  cloud; 20103, "the device failed to handle it", for a device's handlers, as
  docs/protocol.md says of actions);
- :func:`result_of`: a reply's data, or its code raised as :class:`IVError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Reply

__all__ = ["DEVICE_FAILED", "INTERNAL_ERROR", "Outstanding", "reply_to", "result_of"]

W = TypeVar("W")

#: What the cloud answers when a handler fails with anything but an IVError.
INTERNAL_ERROR = ErrorCode.IVTermErr_msg_user_cmd_internal_error
#: What a device answers when one of its handlers fails so.
DEVICE_FAILED = ErrorCode.IVTermErr_msg_gdm_handle_fail


def reply_to(request_id: int, outcome: Any, *, fallback: ErrorCode = INTERNAL_ERROR) -> Reply:
    """The reply to request ``request_id``: ``outcome`` is the handler's data (a dict) or
    the exception it raised."""
    if isinstance(outcome, IVError):
        return Reply(request_id, int(outcome.code), msg=outcome.message)
    if isinstance(outcome, BaseException):
        return Reply(request_id, int(fallback), msg=f"failed ({type(outcome).__name__})")
    return Reply(request_id, 0, outcome if isinstance(outcome, dict) else {})


def result_of(reply: Reply) -> dict[str, Any]:
    """The data of a successful reply; otherwise its code, raised."""
    if not reply.ok:
        raise IVError.of(reply.code, reply.msg or None)
    return reply.data


class Outstanding(Generic[W]):
    """Requests sent and not answered yet: each id with what waits for its reply (a future,
    or where to pass the reply on). Ids count up from 1 for the life of the table."""

    def __init__(self) -> None:
        self._ids: Iterator[int] = itertools.count(1)
        self._waiting: dict[int, W] = {}

    def add(self, waiter: W) -> int:
        """Register ``waiter``; the id to send the request with."""
        request_id = next(self._ids)
        self._waiting[request_id] = waiter
        return request_id

    def take(self, request_id: int) -> W | None:
        """The waiter of a reply's id (then forgotten); None for an unknown or late one."""
        return self._waiting.pop(request_id, None)

    def take_all(self) -> list[W]:
        """Every waiter (the connection went): the caller fails them."""
        waiters = list(self._waiting.values())
        self._waiting.clear()
        return waiters

    def __len__(self) -> int:
        return len(self._waiting)
