"""Explicit state machines: a table of allowed moves per concept, in one place, and a
machine that raises on any other move (a bug made loud instead of a state silently lost).

::

    machine = StateMachine("player", PLAYER_MOVES, PlayerState.IDLE)
    machine.move(PlayerState.CONNECTING)   # True: it moved
    machine.move(PlayerState.PAUSED)       # IllegalTransition
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Generic, TypeVar

__all__ = ["IllegalTransition", "StateMachine"]

S = TypeVar("S")


class IllegalTransition(RuntimeError):
    """A move the machine's table does not allow (a bug in the SDK)."""


class StateMachine(Generic[S]):
    """``state`` moves only along ``moves`` (state -> states it may go to)."""

    def __init__(self, name: str, moves: Mapping[S, Set[S]], initial: S) -> None:
        missing = {s for targets in moves.values() for s in targets} - set(moves)
        if missing:
            raise ValueError(f"{name}: states without a row: {missing}")
        self.name, self.moves, self.state = name, moves, initial

    def can(self, to: S) -> bool:
        return to == self.state or to in self.moves[self.state]

    def move(self, to: S) -> bool:
        """Move to ``to``; True if the state changed (False: it was there already)."""
        if to == self.state:
            return False
        if to not in self.moves[self.state]:
            raise IllegalTransition(
                f"{self.name} cannot go from {_name(self.state)} to {_name(to)}"
            )
        self.state = to
        return True


def _name(state: object) -> str:
    return str(getattr(state, "value", state))
