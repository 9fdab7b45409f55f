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


def test_a_player_moves_only_along_its_table() -> None:
    from iotvideo.app.player import PLAYER_MOVES, PlayerStatus
    from iotvideo.protocol.states import IllegalTransition, StateMachine

    machine = StateMachine("player status", PLAYER_MOVES, PlayerStatus.IDLE)
    for step in (PlayerStatus.CONNECTING, PlayerStatus.LOADING, PlayerStatus.PLAYING):
        assert machine.move(step)
    assert not machine.move(PlayerStatus.PLAYING)  # already there
    assert machine.move(PlayerStatus.PAUSED) and machine.move(PlayerStatus.PLAYING)
    with pytest.raises(IllegalTransition, match="from playing to loading"):
        machine.move(PlayerStatus.LOADING)
    assert machine.state is PlayerStatus.PLAYING  # an illegal move changes nothing
    # Every status has a row, and a stopped or failed player can play again.
    assert set(PLAYER_MOVES) == set(PlayerStatus)
    assert PlayerStatus.CONNECTING in PLAYER_MOVES[PlayerStatus.STOPPED]
    assert PlayerStatus.CONNECTING in PLAYER_MOVES[PlayerStatus.FAILED]
    with pytest.raises(ValueError, match="without a row"):
        StateMachine(
            "broken", {PlayerStatus.IDLE: frozenset({PlayerStatus.PLAYING})}, PlayerStatus.IDLE
        )


def test_the_device_link_moves_only_along_its_table() -> None:
    from iotvideo.device.client import _STATUS, DEVICE_MOVES, DeviceStatus
    from iotvideo.protocol.states import IllegalTransition, StateMachine

    assert set(DEVICE_MOVES) == set(DeviceStatus)
    assert set(_STATUS.values()) <= set(DeviceStatus)  # every endpoint state has a reading
    machine = StateMachine("device link", DEVICE_MOVES, DeviceStatus.OFFLINE)
    for step in (DeviceStatus.CONNECTING, DeviceStatus.ONLINE, DeviceStatus.OFFLINE):
        assert machine.move(step)
    machine.move(DeviceStatus.STOPPED)
    with pytest.raises(IllegalTransition, match="from stopped to online"):
        machine.move(DeviceStatus.ONLINE)
