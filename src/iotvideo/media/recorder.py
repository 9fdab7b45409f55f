"""MP4 recording by remuxing what arrives (no re-encoding), and still pictures.

H.264 access units (Annex-B, as RTP carries them) go into the MP4 as they are; the MP4
muxer rewrites only their start codes to length prefixes. Opus audio goes in as it is;
G.711 (which MP4 cannot hold) is the one thing transcoded, to AAC, cheaply.

The recorder's methods do blocking file I/O: call them off the event loop (the players
do, on their recording worker).
"""

from __future__ import annotations

import contextlib
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from iotvideo.media.audio import AudioDecoder
from iotvideo.media.h264 import CLOCK_RATE, parameter_sets

__all__ = ["MP4Recorder", "encode_picture", "mux_packet"]

VIDEO_TB = Fraction(1, CLOCK_RATE)


def _opus_head(channels: int) -> bytes:
    """The OpusHead an MP4 'dOps' box is made from (RFC 7845): version 1, the channel
    count, a pre-skip of 312 samples, 48 kHz input, no gain, mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 312, 48_000, 0, 0)


class MP4Recorder:
    """Writes one MP4: ``start``, then ``write_video``/``write_audio`` in arrival order,
    then ``stop``. Video starts at the first keyframe; timestamps are rebased to 0."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._container: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._audio_codec: str | None = None
        self._video_origin: int | None = None
        self._audio_origin: int | None = None
        self._transcoder: tuple[AudioDecoder, Any] | None = None
        self._aac_pts = 0
        self._started_at = 0.0
        self.video_packets = 0
        self.audio_packets = 0

    @property
    def recording(self) -> bool:
        return self._container is not None

    def start(self, path: str | Path, *, width: int, height: int, audio: str | None) -> None:
        """Open ``path``; ``audio`` is the codec that will arrive (opus, pcmu, pcma) or None."""
        self.path = Path(path)
        self._container = av.open(str(self.path), "w", format="mp4")
        video = self._container.add_stream("h264", rate=90_000)
        video.width, video.height = width or 640, height or 360
        video.time_base = VIDEO_TB
        self._video = video
        self._audio_codec = audio
        if audio == "opus":
            self._audio = self._container.add_stream("opus", rate=48_000)
            self._audio.codec_context.extradata = _opus_head(2)
        elif audio in ("pcmu", "pcma"):
            self._audio = self._container.add_stream("aac", rate=48_000)
            self._audio.codec_context.layout = "mono"
            self._transcoder = (AudioDecoder(audio), self._audio.codec_context)
        if self._audio is not None:
            self._audio.time_base = Fraction(1, 48_000)

    def write_video(self, data: bytes, pts: int, keyframe: bool, at: float) -> None:
        """One access unit with its 90 kHz pts, arrived at monotonic time ``at``."""
        if self._container is None:
            return
        if self._video_origin is None:
            if not keyframe:
                return
            self._video_origin = pts
            self._started_at = at
            self._video.codec_context.extradata = parameter_sets(data)
        self._mux(self._video, data, pts - self._video_origin, VIDEO_TB, keyframe)
        self.video_packets += 1

    def write_audio(self, data: bytes, pts: int, rate: int, at: float) -> None:
        """One audio frame with its pts in the codec's clock (``rate`` Hz)."""
        if self._container is None or self._audio is None or self._video_origin is None:
            return  # audio starts with the video's first keyframe
        if self._audio_origin is None:
            self._audio_origin = pts - round((at - self._started_at) * rate)
        pts48 = (pts - self._audio_origin) * 48_000 // rate
        if pts48 < 0:
            return
        if self._transcoder is not None:
            self._transcode(data, pts48)
        else:
            self._mux(self._audio, data, pts48, Fraction(1, 48_000), True)
        self.audio_packets += 1

    def _transcode(self, data: bytes, pts48: int) -> None:
        assert self._transcoder is not None
        decoder, aac = self._transcoder
        samples = decoder.decode(data)
        if not samples.size:
            return
        if self._aac_pts == 0:
            self._aac_pts = pts48
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts, frame.time_base = self._aac_pts, Fraction(1, 48_000)
        self._aac_pts += samples.size
        for packet in aac.encode(frame):
            packet.stream = self._audio
            self._container.mux(packet)

    def _mux(self, stream: Any, data: bytes, pts: int, tb: Fraction, key: bool) -> None:
        mux_packet(self._container, stream, data, pts, tb, key)

    def stop(self) -> Path | None:
        """Finish the file; its path (None if nothing was recorded)."""
        container, self._container = self._container, None
        if container is None:
            return None
        if self._transcoder is not None:
            for packet in self._transcoder[1].encode(None):
                packet.stream = self._audio
                container.mux(packet)
        container.close()
        if self.video_packets == 0 and self.path is not None:
            self.path.unlink(missing_ok=True)
            return None
        return self.path


def mux_packet(
    container: Any, stream: Any, data: bytes, pts: int, time_base: Fraction, keyframe: bool
) -> None:
    """Mux one encoded frame (pts = dts: no B-frames) into ``stream`` of ``container``.
    A timestamp going backwards (after a loss) is skipped, not fatal."""
    packet = av.Packet(data)
    packet.pts = packet.dts = pts
    packet.time_base = time_base
    packet.stream = stream
    packet.is_keyframe = keyframe
    with contextlib.suppress(av.FFmpegError):
        container.mux(packet)


def concat_mp4(pieces: list[tuple[int, Path]], out: Path) -> None:
    """Remux MPEG-TS files (``(start ms, path)``, in order) into one MP4 at ``out``, each
    placed at its start time relative to the first (a gap is a jump in time); the streams
    are copied, not re-encoded. The first file names the streams (a recording's files all
    hold the same ones). Blocking: run it on a worker thread."""
    t0 = pieces[0][0]
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        outs: dict[str, Any] = {}
        last: dict[str, int] = {}
        for start_ms, path in pieces:
            with av.open(str(path)) as src:
                wanted = [s for s in src.streams if s.type in ("video", "audio")]
                if not outs:
                    # Every stream before the first packet: the muxer writes its header
                    # then, and a stream added later crashes it (SIGFPE).
                    for stream in wanted:
                        outs[stream.type] = dst.add_stream_from_template(stream)
                        outs[stream.type].time_base = stream.time_base
                origin = (src.start_time or 0) / 1_000_000  # the file's first timestamp
                shift = (start_ms - t0) / 1000 - origin
                for packet in src.demux([s for s in wanted if s.type in outs]):
                    kind = packet.stream.type
                    if packet.dts is None or packet.pts is None or not packet.size:
                        continue
                    moved = round(shift / packet.time_base)
                    dts = packet.dts + moved
                    if dts <= last.get(kind, -(1 << 62)):
                        continue  # overlaps what the previous file held
                    last[kind] = dts
                    packet.dts, packet.pts = dts, packet.pts + moved
                    packet.stream = outs[kind]
                    dst.mux(packet)


def encode_picture(frame: av.VideoFrame, fmt: str = "jpeg") -> bytes:
    """A decoded frame as a JPEG or PNG file's bytes."""
    fmt = fmt.lower().lstrip(".")
    if fmt in ("jpg", "jpeg"):
        codec: Any = av.CodecContext.create("mjpeg", "w")
        pix = "yuvj420p"
    elif fmt == "png":
        codec = av.CodecContext.create("png", "w")
        pix = "rgb24"
    else:
        raise ValueError("a snapshot is .jpg, .jpeg or .png")
    codec.width, codec.height = frame.width, frame.height
    codec.pix_fmt = pix
    codec.time_base = Fraction(1, 25)
    if pix == "yuvj420p":
        codec.options = {"qmin": "2", "qmax": "4"}
    image = frame.reformat(format=pix)
    image.pts = 0
    packets = list(codec.encode(image)) + list(codec.encode(None))
    return b"".join(bytes(p) for p in packets)


def picture_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG or PNG, by decoding it."""
    codec: Any = av.CodecContext.create("png" if data[:4] == b"\x89PNG" else "mjpeg", "r")
    frames = list(codec.decode(av.Packet(data)))
    if not frames:
        raise ValueError("not a picture")
    array: np.ndarray = frames[0].to_ndarray(format="rgb24")
    return array.shape[1], array.shape[0]


async def stream_snapshot(stream: Any, fmt: str = "jpeg", timeout: float = 5.0) -> bytes:
    """A picture of a live stream (a :class:`~iotvideo.media.sources.MediaStream`): its
    next keyframe, decoded off the event loop. Works for streams passed through as well
    as encoded ones: no frame of the source is needed, only what viewers get."""
    import asyncio

    from iotvideo.media.h264 import H264Decoder

    viewer = stream.add_viewer()
    try:
        async with asyncio.timeout(timeout):
            packet = await viewer.get()
    finally:
        stream.remove_viewer(viewer)
    if packet is None:
        raise ValueError("the stream ended")

    def picture() -> bytes:
        decoder = H264Decoder()
        frames = decoder.decode(packet.data, packet.pts)
        if not frames:  # a decoder that holds a frame back gives it on flush
            frames = decoder.flush()
        if not frames:
            raise ValueError("no picture in the keyframe")
        return encode_picture(frames[0], fmt)

    return await asyncio.to_thread(picture)
