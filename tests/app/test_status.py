"""The link status machine allows the seed's moves and refuses the rest."""

from __future__ import annotations

import pytest

from iotvideo.app.status import IllegalTransition, LinkStatus, LinkStatusMachine


def test_moves() -> None:
    machine = LinkStatusMachine()
    path = [LinkStatus.CONNECTING, LinkStatus.ONLINE, LinkStatus.OFFLINE, LinkStatus.CONNECTING]
    path += [LinkStatus.TOKEN_FAILED, LinkStatus.UNREGISTERED]
    for status in path:
        assert machine.move(status)
    assert not machine.move(LinkStatus.UNREGISTERED), "staying is not a change"


@pytest.mark.parametrize(
    ("start", "to"),
    [
        ([], LinkStatus.ONLINE),
        ([], LinkStatus.OFFLINE),
        ([LinkStatus.CONNECTING, LinkStatus.OFFLINE], LinkStatus.ONLINE),
        ([LinkStatus.CONNECTING, LinkStatus.TOKEN_FAILED], LinkStatus.ONLINE),
    ],
)
def test_illegal_moves(start: list[LinkStatus], to: LinkStatus) -> None:
    machine = LinkStatusMachine()
    for status in start:
        machine.move(status)
    with pytest.raises(IllegalTransition):
        machine.move(to)
