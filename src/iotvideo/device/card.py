"""The memory card: continuous recording of a source's shared stream, its index, retention,
repair after a power cut, and reading back for playback and download.

::

    card = await Card.open("/mnt/sd", file_seconds=60, max_bytes=8 << 30, max_days=30)
    media = await DeviceMedia.open(device, video="rtsp://...", card=card)  # records source 1

Layout of the card directory: one MPEG-TS file per ``file_seconds`` (``<start ms>.ts``,
H.264 as the source sends it, audio as Opus), each starting at a keyframe, so a file cut
by a power cut is playable up to the cut; and ``index.db`` (SQLite) listing the files with
their start/end times (UNIX ms) and, for each keyframe, its time and byte offset, so
playback seeks without reading a file from its start. Consecutive files share their
boundary (the keyframe that starts the next one), so recorded ranges have no holes.

Retention: before a new file starts, the oldest files go until the card holds at most
``max_bytes`` (default: what the card's file system can hold, less 5%) and nothing older
than ``max_days``. :meth:`Card.open` repairs the card: a file the index says is still being
written (a power cut) is trimmed to whole TS packets and scanned for its keyframes and end,
or dropped when it holds no keyframe; files the index lacks are scanned in, rows whose file
is gone are removed.

A card that disappears (its directory removed, the card pulled) stops the recorder (it
starts again when the directory comes back) and turns reads into 20137 (playback) or
21061/21064 (download), never a crash.

All methods here block (file and SQLite I/O, demuxing): the recorder runs them on its own
worker thread; call the others with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av

from iotvideo.media.audio import AudioDecoder, AudioEncoder
from iotvideo.media.fanout import MediaPacket, Viewer
from iotvideo.media.h264 import CLOCK_RATE
from iotvideo.media.recorder import mux_packet
from iotvideo.media.sources import AudioStream, MediaStream
from iotvideo.media.worker import SerialWorker, cancel_and_wait
from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["Card", "CardFile", "CardPacket", "CardRecorder", "fill_test_recording"]

log = logging.getLogger("iotvideo.device.card")

TS_PACKET = 188
#: PIDs of the tables the MPEG-TS muxer writes before the streams (PAT, SDT, PMT).
_TABLE_PIDS = {0x0000, 0x0011, 0x1000}
#: Version of the list replies (the app SDK refuses others with 21037).
LIST_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    start_ms INTEGER PRIMARY KEY,
    end_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    pts0 INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS keyframes (
    file_ms INTEGER NOT NULL REFERENCES files(start_ms) ON DELETE CASCADE,
    time_ms INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (file_ms, time_ms)
);
"""


@dataclass(frozen=True)
class CardFile:
    """One recording file: ``start_ms``..``end_ms`` (UNIX ms) and its size."""

    start_ms: int
    end_ms: int
    bytes: int
    complete: bool
    pts0: int = 0

    @property
    def name(self) -> str:
        return f"{self.start_ms}.ts"

    def item(self) -> dict[str, Any]:
        """As a playback-list item (the seed's IVPlaybackItem: start/end ms and a type)."""
        return {
            "start": self.start_ms,
            "end": self.end_ms,
            "duration": self.end_ms - self.start_ms,
            "type": "continuous",
            "size": self.bytes,
        }


@dataclass(frozen=True)
class CardPacket:
    """A packet read back: its kind (video/audio), data, recording time and keyframe flag."""

    kind: str
    data: bytes
    time_ms: float
    keyframe: bool


def card_missing(code: ErrorCode = ErrorCode.IVTermErr_msg_find_record_file_fail) -> IVError:
    return IVError.of(code, "the memory card is missing (its directory is gone)")


class Card:
    """A card directory with its index. Thread-safe; every method blocks."""

    def __init__(
        self,
        root: str | Path,
        *,
        file_seconds: float = 60.0,
        max_bytes: int | None = None,
        max_days: float | None = 30.0,
        definition: str = "mid",
    ) -> None:
        if file_seconds <= 0:
            raise ValueError("file_seconds must be positive")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.root = Path(root)
        self.file_seconds = file_seconds
        self.max_bytes = max_bytes
        self.max_days = max_days
        #: The definition of the source the recorder keeps (the source's shared stream).
        self.definition = definition
        #: Files deleted by retention so far, and files repaired or dropped by open().
        self.deleted = 0
        self.repaired = 0
        self.dropped = 0
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    # Opening and repair

    @classmethod
    async def open(cls, root: str | Path, **options: Any) -> Card:
        """The card at ``root`` (created if missing), repaired; off the event loop."""
        card = cls(root, **options)
        await asyncio.to_thread(card.mount)
        return card

    @property
    def present(self) -> bool:
        return self.root.is_dir()

    def mount(self) -> None:
        """Create the directory and index if needed, and repair them."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            self._connect()
            self.repair()

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        db = sqlite3.connect(self.root / "index.db", check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        self._db = db
        return db

    def _conn(
        self, code: ErrorCode = ErrorCode.IVTermErr_msg_find_record_file_fail
    ) -> sqlite3.Connection:
        """The index, after checking the card is there (raises ``code`` if not)."""
        if not self.present:
            self._forget()
            raise card_missing(code)
        return self._connect()

    def _forget(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def close(self) -> None:
        with self._lock:
            self._forget()

    def repair(self) -> None:
        """Make the index and the files agree (see the module doc)."""
        with self._lock:
            db = self._conn()
            rows = {r[0]: r for r in db.execute("SELECT start_ms, complete FROM files")}
            on_disk = {}
            for path in self.root.glob("*.ts"):
                try:
                    on_disk[int(path.stem)] = path
                except ValueError:
                    continue
            for start, (_, complete) in rows.items():
                if start not in on_disk:
                    db.execute("DELETE FROM files WHERE start_ms = ?", (start,))
                elif not complete:
                    self._rescan(start, on_disk[start])
            for start, path in on_disk.items():
                if start not in rows:
                    self._rescan(start, path)
            self.enforce_retention()

    def _rescan(self, start: int, path: Path) -> None:
        """A file cut by a power cut (or unknown to the index): trim it to whole TS
        packets and index what it holds, or drop it."""
        size = path.stat().st_size
        # Its last frame may be cut short: keep the file up to where that frame begins.
        whole = min(size - size % TS_PACKET, _last_video_pos(path))
        if whole != size:
            with path.open("r+b") as f:
                f.truncate(whole)
        scan = _scan(path, start) if whole else None
        db = self._connect()
        if scan is None:
            log.warning("card: dropping %s (no playable video)", path.name)
            path.unlink(missing_ok=True)
            db.execute("DELETE FROM files WHERE start_ms = ?", (start,))
            self.dropped += 1
            return
        end_ms, pts0, keyframes = scan
        self._store(start, end_ms, whole, pts0, keyframes)
        log.info(
            "card: repaired %s (%d keyframes, %d ms)", path.name, len(keyframes), end_ms - start
        )
        self.repaired += 1

    def _store(
        self, start: int, end_ms: int, size: int, pts0: int, keyframes: list[tuple[int, int]]
    ) -> None:
        db = self._connect()
        db.execute("BEGIN")
        try:
            db.execute(
                "INSERT INTO files (start_ms, end_ms, bytes, complete, pts0) VALUES (?, ?, ?, 1, ?)"
                " ON CONFLICT (start_ms) DO UPDATE SET end_ms = excluded.end_ms,"
                " bytes = excluded.bytes, complete = 1, pts0 = excluded.pts0",
                (start, end_ms, size, pts0),
            )
            db.execute("DELETE FROM keyframes WHERE file_ms = ?", (start,))
            db.executemany(
                "INSERT OR IGNORE INTO keyframes (file_ms, time_ms, pos) VALUES (?, ?, ?)",
                [(start, t, pos) for t, pos in keyframes],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # Writing (the recorder)

    def begin_file(self, start_ms: int) -> Path:
        """Register a file being written from ``start_ms``; its path."""
        with self._lock:
            self._conn().execute(
                "INSERT OR REPLACE INTO files (start_ms, end_ms, bytes, complete)"
                " VALUES (?, ?, 0, 0)",
                (start_ms, start_ms),
            )
            return self.root / f"{start_ms}.ts"

    def extend_file(self, start_ms: int, end_ms: int) -> None:
        """The file being written now reaches ``end_ms``."""
        with self._lock:
            path = self.root / f"{start_ms}.ts"
            size = path.stat().st_size if path.exists() else 0
            self._conn().execute(
                "UPDATE files SET end_ms = ?, bytes = ? WHERE start_ms = ?",
                (end_ms, size, start_ms),
            )

    def finish_file(self, start_ms: int, end_ms: int) -> None:
        """The file is closed: index its keyframes (by scanning it) and mark it complete."""
        with self._lock:
            path = self.root / f"{start_ms}.ts"
            self._conn()
            scan = _scan(path, start_ms) if path.exists() else None
            if scan is None:
                path.unlink(missing_ok=True)
                self._connect().execute("DELETE FROM files WHERE start_ms = ?", (start_ms,))
                return
            _, pts0, keyframes = scan
            self._store(start_ms, end_ms, path.stat().st_size, pts0, keyframes)
            log.info(
                "card: recorded %s (%.1f s, %d keyframes)",
                path.name,
                (end_ms - start_ms) / 1000,
                len(keyframes),
            )

    def enforce_retention(self, *, now_ms: int | None = None, reserve: int = 0) -> None:
        """Delete the oldest complete files until the card holds at most its budget less
        ``reserve`` bytes (room for the next file), and every file older than max_days."""
        with self._lock:
            db = self._conn()
            files = db.execute(
                "SELECT start_ms, end_ms, bytes FROM files WHERE complete = 1 ORDER BY start_ms"
            ).fetchall()
            total = sum(row[0] for row in db.execute("SELECT bytes FROM files"))
            budget = self.budget() - reserve
            cutoff = None
            if self.max_days is not None:
                cutoff = (now_ms or int(time.time() * 1000)) - int(self.max_days * 86_400_000)
            for start, end, size in files:
                too_old = cutoff is not None and end < cutoff
                if total <= budget and not too_old:
                    break
                (self.root / f"{start}.ts").unlink(missing_ok=True)
                db.execute("DELETE FROM files WHERE start_ms = ?", (start,))
                total -= size
                self.deleted += 1
                log.info("card: deleted %s.ts (%s)", start, "too old" if too_old else "card full")

    def budget(self) -> int:
        """Bytes the recordings may take."""
        if self.max_bytes is not None:
            return self.max_bytes
        usage = shutil.disk_usage(self.root)
        used = sum(p.stat().st_size for p in self.root.glob("*.ts"))
        return int((used + usage.free) * 0.95)

    # Reading

    def _select(
        self,
        where: str,
        args: tuple[Any, ...],
        *,
        code: ErrorCode = ErrorCode.IVTermErr_msg_find_record_file_fail,
    ) -> list[CardFile]:
        """Files matching ``where`` (SQL after WHERE, with ``args``), as CardFile."""
        rows = self._conn(code).execute(
            # ``where`` is one of this class's own constant fragments; values go in ``args``.
            "SELECT start_ms, end_ms, bytes, complete, pts0 FROM files WHERE " + where,  # noqa: S608
            args,
        )
        return [CardFile(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def files(self, start_ms: int = 0, end_ms: int = 1 << 62) -> list[CardFile]:
        """The files overlapping ``start_ms``..``end_ms``, oldest first."""
        return self.page(start_ms, end_ms, 0, -1)[0]

    def page(
        self, start_ms: int, end_ms: int, offset: int, limit: int
    ) -> tuple[list[CardFile], int]:
        """One page of :meth:`files` (``limit`` from ``offset``; -1: all) and how many
        there are."""
        overlapping = "end_ms > ? AND start_ms < ? AND end_ms > start_ms"
        with self._lock:
            total = self._conn().execute(
                "SELECT count(*) FROM files WHERE " + overlapping,  # noqa: S608 - a constant
                (start_ms, end_ms),
            )
            count = int(total.fetchone()[0])
            found = self._select(
                overlapping + " ORDER BY start_ms LIMIT ? OFFSET ?",
                (start_ms, end_ms, limit, offset),
            )
            return found, count

    def file(self, start_ms: int) -> CardFile | None:
        with self._lock:
            found = self._select(
                "start_ms = ?", (start_ms,), code=ErrorCode.IVDownloadError_FileNotFound
            )
            return found[0] if found else None

    def path(self, file: CardFile) -> Path:
        return self.root / file.name

    def days(self, year: int, month: int, tz_offset_min: int = 0) -> list[int]:
        """The days (1..31) of ``year``-``month`` that have recordings, in the time zone
        ``tz_offset_min`` minutes east of UTC."""
        with self._lock:
            shift = tz_offset_min * 60
            rows = self._conn().execute(
                "SELECT DISTINCT d FROM ("
                " SELECT date(start_ms / 1000 + ?, 'unixepoch') AS d FROM files"
                " UNION SELECT date((end_ms - 1) / 1000 + ?, 'unixepoch') FROM files)"
                " WHERE d LIKE ? ORDER BY d",
                (shift, shift, f"{year:04d}-{month:02d}-%"),
            )
            return [int(r[0][8:10]) for r in rows]

    def locate(self, at_ms: int) -> tuple[CardFile, int, int]:
        """Where playback from ``at_ms`` starts: the file holding it (or the next one after
        a gap), and the time and byte offset of the keyframe at or before it. 20137 when
        there is nothing at or after ``at_ms``."""
        with self._lock:
            found = self._select("end_ms > ? ORDER BY start_ms LIMIT 1", (at_ms,))
            if not found:
                raise IVError.of(
                    ErrorCode.IVTermErr_msg_find_record_file_fail,
                    "no recording at or after that time",
                )
            file = found[0]
            at_ms = max(at_ms, file.start_ms)
            key = (
                self._conn()
                .execute(
                    "SELECT time_ms, pos FROM keyframes WHERE file_ms = ? AND time_ms <= ?"
                    " ORDER BY time_ms DESC LIMIT 1",
                    (file.start_ms, at_ms),
                )
                .fetchone()
            )
            return (file, key[0], key[1]) if key else (file, file.start_ms, 0)

    def next_file(self, after: CardFile) -> CardFile | None:
        with self._lock:
            found = self._select("start_ms > ? ORDER BY start_ms LIMIT 1", (after.start_ms,))
            return found[0] if found else None

    def read(self, at_ms: int) -> Iterator[CardPacket]:
        """Packets from the keyframe at or before ``at_ms`` on, across files, in recording
        order; video first (audio starts with the first keyframe). Raises 20137 when the
        card or the file is gone, 20138 when a file cannot be read."""
        file, key_ms, pos = self.locate(at_ms)
        yield from _read_file(self.path(file), file, pos, key_ms)
        following = self.next_file(file)
        while following is not None:
            yield from _read_file(self.path(following), following, 0, following.start_ms)
            following = self.next_file(following)


class _Spliced:
    """A TS file read from ``offset`` with its stream tables (PAT, SDT, PMT) in front, so
    the demuxer knows the streams without reading the file from its start."""

    def __init__(self, f: BinaryIO, offset: int) -> None:
        header = bytearray()
        while True:
            packet = f.read(TS_PACKET)
            if len(packet) < TS_PACKET or packet[0] != 0x47:
                break
            pid = ((packet[1] & 0x1F) << 8) | packet[2]
            if pid not in _TABLE_PIDS:
                break
            header += packet
        self._header = bytes(header)
        self._f = f
        f.seek(offset)

    def read(self, n: int) -> bytes:
        if self._header:
            out, self._header = self._header[:n], self._header[n:]
            return out
        return self._f.read(n)


def _open_ts(path: Path, offset: int) -> tuple[Any, BinaryIO | None]:
    if not offset:
        return av.open(str(path), format="mpegts"), None
    f = path.open("rb")
    try:
        return av.open(_Spliced(f, offset), format="mpegts"), f
    except BaseException:
        f.close()
        raise


def _read_file(path: Path, file: CardFile, offset: int, from_ms: int) -> Iterator[CardPacket]:
    try:
        container, f = _open_ts(path, offset)
    except FileNotFoundError:
        raise IVError.of(
            ErrorCode.IVTermErr_msg_find_record_file_fail, f"recording {file.name} is gone"
        ) from None
    except (av.FFmpegError, OSError) as exc:
        if not file.complete:
            return  # the file being written holds too little yet: the recording ends here
        raise IVError.of(
            ErrorCode.IVTermErr_msg_read_record_file_fail, f"cannot read {file.name}: {exc}"
        ) from None
    try:
        started = False
        packets = container.demux()
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as exc:
                if not file.complete:
                    return
                raise IVError.of(
                    ErrorCode.IVTermErr_msg_read_record_file_fail,
                    f"cannot read {file.name}: {exc}",
                ) from None
            if packet.size == 0 or packet.pts is None:
                continue
            kind = packet.stream.type
            if kind == "video":
                at = file.start_ms + (packet.pts - file.pts0) * 1000 / CLOCK_RATE
                if not started:
                    if not packet.is_keyframe or at < from_ms - 1:
                        continue
                    started = True
                yield CardPacket("video", bytes(packet), at, bool(packet.is_keyframe))
            elif kind == "audio" and started:
                at = file.start_ms + float(packet.pts * packet.time_base) * 1000 - file.pts0 / 90
                yield CardPacket("audio", bytes(packet), at, True)
    finally:
        container.close()
        if f is not None:
            f.close()


def _last_video_pos(path: Path) -> int:
    """Where the file's last video packet begins (0 when it has none)."""
    last = 0
    try:
        container: Any = av.open(str(path), format="mpegts")
    except (av.FFmpegError, OSError):
        return 0
    try:
        if not container.streams.video:
            return 0
        with contextlib.suppress(av.FFmpegError, OSError):
            for packet in container.demux(container.streams.video[0]):
                if packet.size and packet.pos is not None and packet.pos >= 0:
                    last = packet.pos - packet.pos % TS_PACKET
    finally:
        container.close()
    return last


def _scan(path: Path, start_ms: int) -> tuple[int, int, list[tuple[int, int]]] | None:
    """(end_ms, first video pts, [(keyframe time ms, byte offset)]) of a TS file, or None
    when it holds no keyframe. Demuxes only (no decoding)."""
    try:
        container: Any = av.open(str(path), format="mpegts")
    except (av.FFmpegError, OSError):
        return None
    keyframes: list[tuple[int, int]] = []
    pts0: int | None = None
    last = step = 0
    try:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        with contextlib.suppress(av.FFmpegError, OSError):  # a cut file ends mid-packet
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                if pts0 is None:
                    if not packet.is_keyframe:
                        continue
                    pts0 = packet.pts
                at = start_ms + (packet.pts - pts0) * 1000 // CLOCK_RATE
                if packet.is_keyframe and packet.pos is not None and packet.pos >= 0:
                    keyframes.append((at, packet.pos - packet.pos % TS_PACKET))
                if at > last:
                    step = at - last if last else 0
                    last = at
    finally:
        container.close()
    if pts0 is None or not keyframes:
        return None
    return max(last + (step or 66), start_ms + 1), pts0, keyframes


# Recording


class _Writer:
    """Packets in, files on the card out; runs on the recorder's worker thread."""

    def __init__(self, card: Card, width: int, height: int, audio: str | None) -> None:
        self.card = card
        self.width, self.height = width, height
        self.audio_codec = audio
        self._container: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._start_ms = 0
        self._pts0 = 0
        self._extended = 0.0
        self._anchor: tuple[int, float] | None = None  # (source pts, wall ms)
        self._last_ms = 0.0
        self._step_ms = 66.0
        self._audio_anchor: tuple[int, float] | None = None
        self._audio_last = -1
        self._transcode: tuple[AudioDecoder, AudioEncoder] | None = None
        self.files = 0
        #: Called (on the writing thread) after each file is started or finished.
        self.on_file: Callable[[], object] | None = None

    def video(self, packet: MediaPacket, wall_ms: float) -> None:
        if self._anchor is None:
            if not packet.keyframe:
                return
            self._anchor = (packet.pts, wall_ms)
        pts_anchor, wall_anchor = self._anchor
        at = wall_anchor + (packet.pts - pts_anchor) * 1000 / CLOCK_RATE
        if packet.keyframe and abs(at - wall_ms) > 1000:  # the source's clock drifted
            self._anchor, at = (packet.pts, wall_ms), wall_ms
        if at <= self._last_ms:
            return  # a pts going backwards: skip it
        if self._last_ms:
            self._step_ms = min(1000.0, at - self._last_ms)
        if self._container is None:
            if not packet.keyframe:
                return
            self._open(int(at), packet.pts)
        elif packet.keyframe and (
            at - self._start_ms + self._step_ms / 2 >= self.card.file_seconds * 1000
        ):
            self._close(int(at))
            self._open(int(at), packet.pts)
        elif at - self._extended >= 1000:  # the index follows the file being written
            self.card.extend_file(self._start_ms, int(at))
            if self._extended == self._start_ms:  # once a file: it is really on the card
                log.info(
                    "card: recording %s.ts, %d ms on the card", self._start_ms, at - self._start_ms
                )
            self._extended = at
        self._mux(self._video, packet.data, packet.pts - self._pts0, packet.keyframe)
        self._last_ms = at

    def audio(self, packet: MediaPacket, rate: int, wall_ms: float) -> None:
        if self._container is None or self._audio is None:
            return
        if self._audio_anchor is None:
            self._audio_anchor = (packet.pts, wall_ms)
        pts_anchor, wall_anchor = self._audio_anchor
        at = wall_anchor + (packet.pts - pts_anchor) * 1000 / rate
        pts = round((at - self._start_ms) * 48)
        if pts <= self._audio_last:
            return
        self._audio_last = pts
        if self._transcode is None:
            self._mux(self._audio, packet.data, pts, True, Fraction(1, 48_000))
            return
        decoder, encoder = self._transcode
        for out in encoder.encode(decoder.decode(packet.data)):
            self._mux(self._audio, bytes(out), pts, True, Fraction(1, 48_000))

    def _open(self, start_ms: int, pts: int) -> None:
        self.card.enforce_retention(reserve=self._file_estimate())
        path = self.card.begin_file(start_ms)
        # Each packet reaches the file at once (a power cut loses at most the last one),
        # and a lagging stream holds the other back by half a second at most.
        container: Any = av.open(
            str(path),
            "w",
            format="mpegts",
            options={"flush_packets": "1", "max_interleave_delta": "500000"},
        )
        video = container.add_stream("h264", rate=CLOCK_RATE)
        video.width, video.height = self.width or 640, self.height or 360
        video.time_base = Fraction(1, CLOCK_RATE)
        self._video = video
        self._audio = None
        if self.audio_codec is not None:
            self._audio = container.add_stream("opus", rate=48_000)
            self._audio.codec_context.layout = "mono"
            self._audio.time_base = Fraction(1, 48_000)
            if self.audio_codec != "opus" and self._transcode is None:
                self._transcode = (AudioDecoder(self.audio_codec), AudioEncoder("opus"))
        self._container = container
        self._start_ms, self._pts0 = start_ms, pts
        self._extended = float(start_ms)
        self._audio_last = -1
        self.files += 1
        if self.on_file is not None:
            self.on_file()

    def _file_estimate(self) -> int:
        """Bytes the next file will take, from the last one's rate."""
        if not self._last_ms or self._last_ms <= self._start_ms or self._container is None:
            return 0
        path = self.card.root / f"{self._start_ms}.ts"
        try:
            rate = path.stat().st_size / (self._last_ms - self._start_ms)
        except OSError:
            return 0
        return int(rate * self.card.file_seconds * 1000)

    def _mux(
        self,
        stream: Any,
        data: bytes,
        pts: int,
        keyframe: bool,
        time_base: Fraction = Fraction(1, CLOCK_RATE),
    ) -> None:
        mux_packet(self._container, stream, data, pts, time_base, keyframe)

    def _close(self, end_ms: int) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        with contextlib.suppress(av.FFmpegError, OSError):
            container.close()
        self.card.finish_file(self._start_ms, end_ms)
        if self.on_file is not None:
            self.on_file()

    def close(self) -> None:
        """Finish the file being written (it ends one frame after its last)."""
        if self._container is not None:
            self._close(int(self._last_ms + self._step_ms))
        self._anchor = self._audio_anchor = None
        self._last_ms = 0

    def abandon(self) -> None:
        """The card went away: drop the open file without touching the card."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        self._anchor = self._audio_anchor = None
        self._last_ms = 0


class CardRecorder:
    """Records one channel's shared streams onto ``card`` for as long as it runs: the
    video stream of ``card.definition`` (no extra encoding; the source's encoder runs while
    the recorder watches it) and its audio (passed through as Opus, G.711 re-encoded).
    When the card goes away it stops writing and checks every ``poll`` seconds for it."""

    def __init__(
        self,
        card: Card,
        video: MediaStream,
        audio: AudioStream | None,
        *,
        poll: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: the recording time (UNIX seconds); a device's is
        :meth:`DeviceClient.now <iotvideo.device.DeviceClient.now>`, the cloud's time."""
        self.card, self.video_stream, self.audio_stream = card, video, audio
        self.poll = poll
        self.clock = clock
        info = video.info
        self._writer = _Writer(card, info.width, info.height, audio.codec if audio else None)
        self._worker = SerialWorker("card-recorder", maxsize=600)
        self._tasks: list[asyncio.Task[None]] = []
        self._viewers: list[tuple[MediaStream, Viewer]] = []
        self._skipping = False
        #: Video frames that could not be written (the worker fell behind), and whether the
        #: card is there.
        self.frames_lost = 0
        self.card_present = True
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def files(self) -> int:
        return self._writer.files

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``condition()`` holds; it is checked each time a file is started or
        finished and when the card goes or comes back (TimeoutError after ``timeout`` s)."""
        assert self._changed is not None, "start() first"
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(condition)

    def _notify(self) -> None:
        """From any thread: something changed (a file finished, the card went or came)."""
        loop, changed = self._loop, self._changed
        if loop is None or changed is None or loop.is_closed():
            return

        async def notify() -> None:
            async with changed:
                changed.notify_all()

        def schedule() -> None:
            loop.create_task(notify())

        loop.call_soon_threadsafe(schedule)

    def start(self) -> None:
        """Start recording (in a running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self._writer.on_file = self._notify
        video = self.video_stream.add_viewer()
        self._viewers.append((self.video_stream, video))
        self._tasks.append(asyncio.create_task(self._pump_video(video), name="card-video"))
        if self.audio_stream is not None:
            audio = self.audio_stream.add_viewer()
            self._viewers.append((self.audio_stream, audio))
            rate = self.audio_stream.info.clock_rate
            self._tasks.append(
                asyncio.create_task(self._pump_audio(audio, rate), name="card-audio")
            )

    async def stop(self) -> None:
        """Stop and finish the file being written."""
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        for stream, viewer in self._viewers:
            stream.remove_viewer(viewer)
        self._viewers = []
        await asyncio.to_thread(self._worker.close_after, self._finish)
        await asyncio.to_thread(self._worker.close, wait=True)

    def _finish(self) -> None:
        if self.card.present:
            self._writer.close()
        else:
            self._writer.abandon()

    async def _pump_video(self, viewer: Viewer) -> None:
        while (packet := await viewer.get()) is not None:
            if not self.card_present:
                if not packet.keyframe:
                    continue
                self.card_present = await asyncio.to_thread(self._remount)
                if not self.card_present:
                    await asyncio.sleep(self.poll)
                    continue
            if self._skipping and not packet.keyframe:
                self.frames_lost += 1
                continue
            if self._worker.submit(self._write_video, packet, self.clock() * 1000):
                self._skipping = False
            else:
                self.frames_lost += 1
                if not self._skipping:
                    log.warning("card recorder fell behind; skipping to the next keyframe")
                self._skipping = True

    async def _pump_audio(self, viewer: Viewer, rate: int) -> None:
        while (packet := await viewer.get()) is not None:
            if self.card_present:
                self._worker.submit(self._writer.audio, packet, rate, self.clock() * 1000)

    def _write_video(self, packet: MediaPacket, wall_ms: float) -> None:
        try:
            self._writer.video(packet, wall_ms)
        except (IVError, OSError, sqlite3.Error, av.FFmpegError) as exc:
            if self.card.present:
                log.warning("card: cannot write (%s); dropping the file being written", exc)
            else:
                log.warning("card: the memory card is gone; recording stops until it is back")
            self._writer.abandon()
            self.card.close()
            self.card_present = False
            self._notify()

    def _remount(self) -> bool:
        if not self.card.present:
            return False
        try:
            self.card.mount()
        except (OSError, sqlite3.Error) as exc:
            log.warning("card: cannot mount: %s", exc)
            return False
        log.info("card: the memory card is back; recording again")
        self._notify()
        return True


def fill_test_recording(
    card: Card,
    start_ms: int,
    seconds: float,
    *,
    fps: float = 15.0,
    size: tuple[int, int] = (320, 180),
    audio: bool = True,
    gop: float = 2.0,
) -> int:
    """Write ``seconds`` of the test pattern recorded from ``start_ms`` onto ``card``, as
    fast as the CPU encodes it (about 1 ms a frame at 320x180): each picture's burned-in
    clock is its recording time, so playback can be checked frame by frame. For demos
    (a card with a past) and tests. Returns the frames written. Blocking."""
    from iotvideo.media.audio import Tone
    from iotvideo.media.h264 import H264Encoder, is_idr
    from iotvideo.media.testsrc import Stamp, TestPattern

    width, height = size
    pattern = TestPattern(width, height)
    encoder = H264Encoder(width, height, fps=fps, gop=gop)
    writer = _Writer(card, width, height, "opus" if audio else None)
    tone = Tone(440)
    opus = AudioEncoder("opus") if audio else None
    frames = round(seconds * fps)
    audio_pts = 0
    for n in range(frames):
        at_ms = start_ms + n * 1000 / fps
        pts = round(n * CLOCK_RATE / fps)
        for packet in encoder.encode(pattern.frame(Stamp(int(at_ms), n)), pts):
            data = bytes(packet)
            writer.video(MediaPacket(data, pts, is_idr(data)), at_ms)
        while opus is not None and audio_pts * 1000 / 48_000 < (n + 1) * 1000 / fps:
            for packet in opus.encode(tone.next_samples(960)):
                wall = start_ms + audio_pts * 1000 / 48_000
                writer.audio(MediaPacket(bytes(packet), audio_pts, True), 48_000, wall)
            audio_pts += 960
    writer.close()
    return frames
