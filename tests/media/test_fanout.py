"""Fan-out: every viewer gets the source's packets; a slow one skips to the next keyframe
without holding up the others; a new one starts at a keyframe."""

from __future__ import annotations

from iotvideo.media.fanout import FanOut, MediaPacket


def _gop(start: int, length: int = 5) -> list[MediaPacket]:
    """A keyframe and its followers, numbered from ``start``."""
    return [
        MediaPacket(bytes([n % 256]), n, keyframe=(n == start))
        for n in range(start, start + length)
    ]


async def test_a_slow_viewer_does_not_hold_up_the_others() -> None:
    fanout = FanOut(queue_size=8)
    fast, slow = fanout.add(), fanout.add()
    seen = []
    for start in range(0, 40, 5):
        for packet in _gop(start):
            fanout.publish(packet)  # never blocks, whoever is slow
            got = await fast.get()
            assert got is packet
            seen.append(got.pts)
    assert seen == list(range(40))
    # The slow viewer lost what it could not keep, and resumes at the next keyframe.
    assert slow.dropped > 0
    assert slow.waiting_for_keyframe
    for packet in _gop(40):
        fanout.publish(packet)
    fanout.end()
    assert [p.pts async for p in slow] == list(range(40, 45))


async def test_new_viewers_start_at_a_keyframe() -> None:
    asked = []
    encoded = FanOut(on_keyframe_wanted=lambda: asked.append(True))
    for packet in _gop(0):
        encoded.publish(packet)
    late = encoded.add()
    assert asked == [True], "an encoding source is asked for an IDR"
    for packet in _gop(5)[1:] + _gop(10):
        encoded.publish(packet)
    encoded.end()
    assert [p.pts async for p in late] == list(range(10, 15))

    passthrough = FanOut(cache_gop=True)
    for packet in _gop(0) + _gop(5)[:3]:
        passthrough.publish(packet)
    late = passthrough.add()
    passthrough.publish(_gop(5)[3])
    passthrough.end()
    assert [p.pts async for p in late] == [5, 6, 7, 8], "the cached GOP, then live"


async def test_viewers_leave_and_the_source_ends() -> None:
    fanout = FanOut()
    leaving, staying = fanout.add(), fanout.add()
    fanout.publish(_gop(0)[0])
    leaving.close()
    fanout.publish(_gop(0)[1])
    assert await leaving.get() is None
    assert fanout.viewers == [staying]
    fanout.end()
    assert [p.pts async for p in staying] == [0, 1]
    after = fanout.add()
    assert await after.get() is None
