"""Dependencies that go away: tell a database outage from a bug, answer it with a code
that says "retry shortly", and log it once per outage instead of a traceback per request.
"""

from __future__ import annotations

import logging

from sqlalchemy import exc as sa

__all__ = ["Outages", "database_unavailable"]

log = logging.getLogger("iotvideo.cloud")


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached (not a bug, not bad data):
    a connection that failed or closed, or a server shutting down or starting up."""
    for cause in _chain(error):
        if isinstance(cause, sa.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, sa.OperationalError | sa.InterfaceError | sa.TimeoutError):
            return True
        if isinstance(cause, OSError | ConnectionError | TimeoutError):
            return True
        # PostgreSQL's SQLSTATE classes 08 (connection exception), 53 (insufficient
        # resources: too many clients, out of memory or disk) and 57P (operator
        # intervention: shutting down, starting up), as asyncpg reports them.
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(("08", "53", "57P")):
            return True
    return False


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        cause = todo.pop()
        if cause is None or cause in seen or len(seen) > 16:
            continue
        seen.append(cause)
        todo += [cause.__cause__, cause.__context__, getattr(cause, "orig", None)]
    return seen


class Outages:
    """What is down, as this process sees it; one log line when it goes and comes back."""

    def __init__(self) -> None:
        self._down: set[str] = set()

    def down_now(self) -> set[str]:
        """What is down now."""
        return set(self._down)

    def down(self, what: str, error: BaseException) -> None:
        if what not in self._down:
            self._down.add(what)
            log.warning(
                "%s unavailable (%s); answering 'retry shortly' until it is back", what, error
            )

    def up(self, what: str) -> None:
        if what in self._down:
            self._down.discard(what)
            log.warning("%s is back", what)

    def is_down(self, what: str) -> bool:
        return what in self._down

    def round_failed(self, task: str, error: BaseException) -> None:
        """A background round (presence, janitor, retention) failed: one line per outage
        when the database is away, a traceback when it is anything else."""
        if database_unavailable(error):
            self.down("the database", error)
        else:
            log.error("%s failed; will retry", task, exc_info=error)

    def round_done(self) -> None:
        self.up("the database")
