"""The built-in motion detector and the event tracker, on scripted scenes: a textured
still scene with sensor noise and a slow change of light, a box that walks in and out,
zones, the minimum area and the cool-down."""

from __future__ import annotations

import numpy as np
import pytest

from iotvideo.device.gateway.motion import (
    MOTION_BIT,
    Detection,
    EventEnd,
    EventStart,
    EventTracker,
    MotionDetector,
    MotionSettings,
    zone_mask,
)

FPS = 5.0
H, W = 180, 320


def scene(rng: np.random.Generator) -> np.ndarray:
    """A still, textured picture (walls, furniture): smooth blobs of grey."""
    coarse = rng.uniform(40, 200, (H // 20 + 1, W // 20 + 1))
    return np.kron(coarse, np.ones((20, 20)))[:H, :W]


def frames(
    seconds: float,
    *,
    box: tuple[float, float] | None = None,
    box_size: int = 36,
    lane: float = 0.5,
    light: float = 40.0,
    seed: int = 1,
):
    """(t, picture) at FPS: the scene with sensor noise (sigma 5) and ``light`` grey
    levels more light over the whole run; a bright box crossing from left to right at
    row ``lane`` while t is in ``box`` (enter, leave)."""
    rng = np.random.default_rng(seed)
    base = scene(rng)
    for i in range(int(seconds * FPS)):
        t = i / FPS
        picture = base + light * t / seconds + rng.normal(0, 5, (H, W))
        if box is not None and box[0] <= t < box[1]:
            x = int((t - box[0]) / (box[1] - box[0]) * (W - box_size))
            y = int(lane * (H - box_size))
            picture[y : y + box_size, x : x + box_size] = 250
        yield t, np.clip(picture, 0, 255).astype(np.uint8)


def run(settings: MotionSettings, pictures) -> list[EventStart | EventEnd]:
    detector = MotionDetector(settings)
    tracker = EventTracker(settings.cooldown)
    events = []
    last = 0.0
    for t, picture in pictures:
        last = t
        change = tracker.update(detector.detect(picture, t), t)
        if change is not None:
            events.append(change)
    closed = tracker.close(last)
    return events + ([closed] if closed else [])


@pytest.mark.parametrize("sensitivity", [0.2, 0.5, 0.9])
def test_a_still_noisy_scene_with_a_slow_change_of_light_raises_nothing(
    sensitivity: float,
) -> None:
    settings = MotionSettings(sensitivity=sensitivity, min_area=0.005)
    assert run(settings, frames(60, light=60)) == []


def test_a_box_walking_through_is_one_event_from_entering_to_cool_down() -> None:
    settings = MotionSettings(cooldown=4)
    events = run(settings, frames(40, box=(10, 20)))
    assert [type(e) for e in events] == [EventStart, EventEnd]
    start, end = events
    assert isinstance(start, EventStart) and isinstance(end, EventEnd)
    assert 10 <= start.t <= 10.5, start
    assert start.detection.bits == MOTION_BIT
    x0, y0, _x1, y1 = start.detection.box
    assert x0 < 0.2 and 0.3 < y0 < 0.5 < y1 < 0.7  # at the left, where it came in
    assert 19 <= end.end <= 20 and end.start == start.t


def test_motion_outside_the_zones_raises_nothing_and_inside_it_does() -> None:
    top = (((0.0, 0.0), (1.0, 0.0), (1.0, 0.3), (0.0, 0.3)),)
    bottom = (((0.0, 0.7), (1.0, 0.7), (1.0, 1.0), (0.0, 1.0)),)
    walk = {"box": (5, 15), "lane": 0.95}  # along the bottom edge
    assert run(MotionSettings(zones=top), frames(20, **walk)) == []  # type: ignore[arg-type]
    assert len(run(MotionSettings(zones=bottom), frames(20, **walk))) == 2  # type: ignore[arg-type]


def test_a_change_smaller_than_the_minimum_area_raises_nothing() -> None:
    small = {"box": (5, 15), "box_size": 10}  # 100 px of 57,600: 0.17%
    assert run(MotionSettings(min_area=0.01), frames(20, **small)) == []  # type: ignore[arg-type]
    assert len(run(MotionSettings(min_area=0.001), frames(20, **small))) == 2  # type: ignore[arg-type]


def test_a_lone_glitch_starts_no_event() -> None:
    tracker = EventTracker(cooldown=2)
    blip = MotionDetector(MotionSettings())
    pictures = list(frames(4, light=0))
    flash = pictures[10][1].copy()
    flash[50:120, 50:150] = 255  # one picture only
    pictures[10] = (pictures[10][0], flash)
    assert [tracker.update(blip.detect(p, t), t) for t, p in pictures] == [None] * len(pictures)


def test_the_tracker_merges_motion_within_the_cool_down() -> None:
    tracker = EventTracker(cooldown=3)
    moved = Detection(MOTION_BIT, 0.1, (0, 0, 1, 1))
    person = Detection(1 << 16, 0.1, (0, 0, 1, 1))
    seen = [
        tracker.update(moved if t in (1, 1.2, 3, 5.8, 6) else None, t)
        for t in (1, 1.2, 2, 3, 4, 5, 5.8, 6)
    ]
    assert seen[1] == EventStart(1, moved)
    assert [s for s in seen if s is not None] == [EventStart(1, moved)]
    assert tracker.update(person, 6.2) is None  # another bit, same event
    assert tracker.update(None, 9.1) is None
    assert tracker.update(None, 9.3) == EventEnd(1, 6.2, MOTION_BIT | 1 << 16)


def test_zone_masks() -> None:
    mask = zone_mask([((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))], 10, 10)
    assert mask[:, :5].all() and not mask[:, 5:].any()
    triangle = zone_mask([((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))], 100, 100)
    assert abs(triangle.mean() - 0.5) < 0.02
