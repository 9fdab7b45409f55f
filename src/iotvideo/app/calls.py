"""One calling convention for the whole app SDK.

Every operation of every manager and player is an ``asyncio.Task``: ``await`` it for the
result (raising :class:`IVError`), or pass the seed's callback as ``completion`` and let
it run; both work on the same call::

    temperature = await sdk.message.read_property(tid, "ProReadonly.temperature")
    sdk.vas.get_video_play_list(tid, start, end, completion=lambda json, error: ...)

A callback gets what the seed's handler gets: ``(result, None)`` on success (JSON text
where the seed hands JSON text: messages, VAS and DeviceMgr answers), ``(None, error)``
on failure, always on the SDK's event loop. The tasks need that loop: from plain code (a
script, a notebook) use :class:`iotvideo.app.sync.SyncIoTVideo`, which runs the loop on a
thread of its own and blocks on every call.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["Completion", "call", "operation", "seed_json"]

log = logging.getLogger("iotvideo.app")

T = TypeVar("T")
P = ParamSpec("P")

#: ``completion(result, error)``: exactly one of the two is None.
Completion = Callable[[Any, IVError | None], object]

#: Marks the methods made by :func:`operation` (the facade and the tests look for it).
OPERATION = "__iotvideo_operation__"


def seed_json(data: Any) -> str:
    """A cloud answer as the seed's response handlers receive it: the whole JSON text."""
    return json.dumps({"code": 0, "msg": "Success", "data": data}, ensure_ascii=False)


def call(
    work: Coroutine[Any, Any, T],
    completion: Completion | None = None,
    *,
    shape: Callable[[T], Any] | None = None,
    fallback: ErrorCode = ErrorCode.IVMessageError_sendFailed,
) -> asyncio.Task[T]:
    """Run ``work`` as a task on the running loop; with ``completion``, call it when the
    task ends with ``(shape(result), None)`` or ``(None, IVError)`` (other exceptions
    become ``fallback``; a cancelled call is 21007)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        work.close()
        raise RuntimeError(
            "iotvideo SDK calls run on an asyncio event loop: await them in a coroutine, or "
            "use iotvideo.app.sync.SyncIoTVideo from plain code"
        ) from None
    task = loop.create_task(work)
    if completion is not None:
        task.add_done_callback(functools.partial(_complete, completion, shape, fallback))
    return task


def operation(
    shape: Callable[[Any], Any] | None = None,
    *,
    fallback: ErrorCode = ErrorCode.IVMessageError_sendFailed,
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, asyncio.Task[T]]]:
    """Make ``async def method(..., completion=None)`` an operation: calling it starts a
    task (awaitable) and hands its outcome to ``completion`` (the method itself never sees
    the callback: declare the parameter for its signature and docs only)."""

    def wrap(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, asyncio.Task[T]]:
        @functools.wraps(fn)
        def start(*args: P.args, **kwargs: P.kwargs) -> asyncio.Task[T]:
            completion: Completion | None = kwargs.pop("completion", None)  # type: ignore[assignment]
            return call(fn(*args, **kwargs), completion, shape=shape, fallback=fallback)

        setattr(start, OPERATION, True)
        return start

    return wrap


def _complete(
    completion: Completion,
    shape: Callable[[Any], Any] | None,
    fallback: ErrorCode,
    task: asyncio.Task[Any],
) -> None:
    if task.cancelled():
        outcome: tuple[Any, IVError | None] = (
            None,
            IVError.of(ErrorCode.IVMessageError_NotFoundCallback, "the call was cancelled"),
        )
    elif (error := task.exception()) is not None:
        if not isinstance(error, IVError):
            error = IVError.of(fallback, str(error) or type(error).__name__)
        outcome = (None, error)
    else:
        result = task.result()
        outcome = (shape(result) if shape is not None else result, None)
    try:
        completion(*outcome)
    except Exception:  # a user's callback failing must not break the SDK
        log.exception("a completion callback failed")
