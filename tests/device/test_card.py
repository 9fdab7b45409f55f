"""The memory card on its own: live recording across files, retention by size and age,
and repair of what a power cut leaves (the kill -9 run is in tests/cli/test_playback_cli.py).
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path
from typing import Any

import av

from iotvideo.device.card import TS_PACKET, Card, fill_test_recording
from iotvideo.device.media import DeviceMedia
from iotvideo.media.testsrc import read_stamp
from tests.support import ffprobe


class NoLink:
    """A device whose link is not needed here: the card only records."""

    def add_op(self, _op: str, _handler: Any) -> None:
        pass

    def now(self) -> float:
        return time.time()


def consistent(card: Card) -> None:
    """Every indexed file exists with its size, every file on the card is indexed, each
    file has its keyframes with offsets on TS packet boundaries."""
    db = sqlite3.connect(card.root / "index.db")
    try:
        rows = db.execute("SELECT start_ms, end_ms, bytes, complete FROM files").fetchall()
        keys = db.execute("SELECT file_ms, time_ms, pos FROM keyframes").fetchall()
    finally:
        db.close()
    on_disk = {int(p.stem): p.stat().st_size for p in card.root.glob("*.ts")}
    assert {r[0]: r[2] for r in rows} == on_disk
    assert all(r[3] == 1 and r[1] > r[0] for r in rows)
    assert {k[0] for k in keys} == set(on_disk)
    assert all(k[2] % TS_PACKET == 0 and k[1] >= k[0] for k in keys)


async def test_live_recording_is_cut_at_keyframes_into_files_that_join(tmp_path: Path) -> None:
    card = await Card.open(tmp_path / "card", file_seconds=1, definition="low")
    media = await DeviceMedia.open(NoLink(), card=card)  # type: ignore[arg-type]
    recorder = media.card_recorder
    assert recorder is not None
    try:
        await recorder.wait_for(lambda: recorder.files >= 4, timeout=30)
    finally:
        await media.close()
    files = card.files()
    assert len(files) >= 3 and all(f.complete for f in files)
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(files))
    for file in files:
        streams = {s["codec_type"]: s for s in ffprobe(card.path(file))["streams"]}
        assert streams["video"]["codec_name"] == "h264"
        assert (streams["video"]["width"], streams["video"]["height"]) == (320, 180)
        assert streams["audio"]["codec_name"] == "opus"
    consistent(card)
    # Read back across the files: every picture once, in order, at its recorded time.
    video = [p for p in card.read(files[0].start_ms) if p.kind == "video"]
    decoder: Any = av.CodecContext.create("h264", "r")
    stamps = []
    for packet in video:
        for frame in decoder.decode(av.Packet(packet.data)):
            stamp = read_stamp(frame.to_ndarray(format="rgb24"))
            assert stamp is not None
            stamps.append((stamp, packet.time_ms))
    counts = [s.count for s, _ in stamps]
    assert counts == list(range(counts[0], counts[0] + len(counts)))
    # The recording time is when the picture reached the recorder: a few ms after it was made.
    assert all(0 <= at - s.time_ms < 150 for s, at in stamps)
    card.close()


def test_a_full_card_loses_its_oldest_files_first(tmp_path: Path) -> None:
    card = Card(tmp_path / "card", file_seconds=10, max_bytes=2_500_000)
    card.mount()
    start = (int(time.time()) - 600) * 1000
    fill_test_recording(card, start, 60, audio=False)
    card.enforce_retention()
    files = card.files()
    total = sum(f.bytes for f in files)
    assert total <= 2_500_000 and card.deleted >= 3
    # The newest are kept, contiguous up to the end.
    assert files[-1].end_ms >= start + 59_000
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(files))
    consistent(card)
    card.close()


def test_recordings_older_than_max_days_go(tmp_path: Path) -> None:
    card = Card(tmp_path / "card", file_seconds=10, max_days=1)
    card.mount()
    now = int(time.time()) * 1000
    fill_test_recording(card, now - 3 * 86_400_000, 10, audio=False)
    fill_test_recording(card, now - 3_600_000, 10, audio=False)
    card.close()
    card.mount()  # a restart applies retention too
    assert [f.start_ms for f in card.files()] == [now - 3_600_000]
    consistent(card)
    card.close()


def test_repair_trims_cut_files_and_drops_what_cannot_play(tmp_path: Path) -> None:
    card = Card(tmp_path / "card", file_seconds=10)
    card.mount()
    start = (int(time.time()) - 600) * 1000
    fill_test_recording(card, start, 20, audio=False)
    first, second = card.files()
    card.close()
    # A power cut: the second file was still being written (cut mid-packet) ...
    path = card.path(second)
    data = path.read_bytes()
    cut = len(data) // 2 + 77
    path.write_bytes(data[:cut])
    db = sqlite3.connect(card.root / "index.db")
    db.execute(
        "UPDATE files SET complete = 0, end_ms = start_ms WHERE start_ms = ?", (second.start_ms,)
    )
    db.execute("DELETE FROM keyframes WHERE file_ms = ?", (second.start_ms,))
    # ... a file the index never heard of holds no video, and an indexed file is gone.
    (card.root / f"{start + 60_000}.ts").write_bytes(b"\x47" + b"\x00" * 500)
    db.execute(
        "INSERT INTO files (start_ms, end_ms, bytes, complete) VALUES (?, ?, 10, 1)",
        (start + 90_000, start + 95_000),
    )
    db.commit()
    db.close()
    card.mount()
    assert (card.repaired, card.dropped) == (1, 1)
    repaired = card.file(second.start_ms)
    assert repaired is not None and repaired.complete
    assert repaired.bytes == path.stat().st_size < cut  # up to the last whole frame
    assert [f.start_ms for f in card.files()] == [first.start_ms, second.start_ms]
    consistent(card)
    # It plays up to the cut: the last picture's clock is the file's end, less a frame.
    frames = list(av.open(str(path)).decode(video=0))
    assert frames
    last = read_stamp(frames[-1].to_ndarray(format="rgb24"))
    assert last is not None
    assert 0 < repaired.end_ms - last.time_ms <= 100
    assert second.start_ms < repaired.end_ms < second.end_ms
    # And playback seeks into it by its keyframes.
    video = [p for p in card.read(second.start_ms + 3000) if p.kind == "video"]
    assert (
        video[0].keyframe and second.start_ms + 1000 <= video[0].time_ms <= second.start_ms + 3000
    )
    card.close()
