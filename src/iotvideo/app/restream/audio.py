"""A camera's audio for restream clients: on the video's clock, and as AAC when needed.

The device sends Opus (48 kHz) or G.711 (PCMU/PCMA, 8 kHz) on its own RTP clock.
:class:`AudioTimeline` restamps each audio packet onto the video's 90 kHz timeline (the
first one placed by its arrival next to the latest video packet, the rest by their own
clock), so a muxer or an RTSP pipeline stamps both streams the same way and they stay in
step, a replayed group of pictures included.

RTSP serves G.711 as it came; Opus, which RTSP tools and MPEG-TS rarely take, becomes
AAC, and HLS always takes AAC. :class:`AacTranscoder` does that once per camera, however
many clients want it, on a worker thread: decode, resample to 48 kHz mono, encode AAC-LC
in 1024-sample frames, each handed out with its ADTS header (what MPEG-TS muxers and
GStreamer's ``aacparse`` read without other setup).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import av
import numpy as np

from iotvideo.app.player import EncodedPacket
from iotvideo.media.audio import CODECS, AudioDecoder, codec_of_mime
from iotvideo.media.worker import SerialWorker

__all__ = ["AAC_MIME", "AAC_RATE", "AUDIO_WAIT", "AacTranscoder", "AudioTimeline", "adts_header"]

CLOCK = 90_000
AAC_MIME = "audio/AAC"
AAC_RATE = 48_000
AAC_FRAME = 1024
#: A jump (seconds) of either clock that means a new pull: the audio is placed anew.
JUMP = 10
#: Longest a new RTSP client waits (at its DESCRIBE) to learn whether the camera has audio.
AUDIO_WAIT = 5.0


def adts_header(payload_length: int, *, rate_index: int = 3, channels: int = 1) -> bytes:
    """The 7-byte ADTS header of one AAC-LC frame (rate index 3: 48 kHz)."""
    full = payload_length + 7
    return bytes(
        [
            0xFF,
            0xF1,  # MPEG-4, no CRC
            (1 << 6) | (rate_index << 2) | (channels >> 2),  # profile 1: AAC LC
            ((channels & 3) << 6) | (full >> 11),
            (full >> 3) & 0xFF,
            ((full & 7) << 5) | 0x1F,
            0xFC,
        ]
    )


class AudioTimeline:
    """Puts a camera's audio packets on its video's 90 kHz timeline."""

    def __init__(self) -> None:
        self._video: tuple[int, float] | None = None  # the latest (timestamp, arrival)
        self._anchor: tuple[int, int, int] | None = None  # (audio ts, video-time ts, rate)
        self._last_audio: int | None = None

    def video(self, packet: EncodedPacket) -> None:
        if self._video is not None:
            step = (packet.timestamp - self._video[0]) & 0xFFFFFFFF
            if step > JUMP * CLOCK:  # a new pull: a new timeline
                self._anchor = None
        self._video = (packet.timestamp, packet.arrived)

    def place(self, packet: EncodedPacket) -> int | None:
        """The packet's time on the video's timeline; None before any video."""
        if self._video is None:
            return None
        rate = CODECS[codec_of_mime(packet.mime)][1]
        if self._last_audio is not None and self._anchor is not None:
            step = (packet.timestamp - self._last_audio) & 0xFFFFFFFF
            if step > JUMP * rate:  # its clock jumped (or went back): placed anew
                self._anchor = None
        self._last_audio = packet.timestamp
        if self._anchor is None or self._anchor[2] != rate:
            video_ts, video_arrived = self._video
            placed = (video_ts + round((packet.arrived - video_arrived) * CLOCK)) & 0xFFFFFFFF
            self._anchor = (packet.timestamp, placed, rate)
        audio0, placed0, _ = self._anchor
        offset = ((packet.timestamp - audio0) & 0xFFFFFFFF) * CLOCK // rate
        return (placed0 + offset) & 0xFFFFFFFF


class AacTranscoder:
    """One camera's audio (already on the video's timeline) to AAC, off the event loop;
    ``emit`` gets each AAC packet (ADTS framed) on the loop."""

    def __init__(self, name: str, emit: Callable[[EncodedPacket], None]) -> None:
        self._emit = emit
        self._loop = asyncio.get_running_loop()
        self._worker = SerialWorker(f"aac {name}", maxsize=100)
        self._codec: str | None = None
        self._decoder: AudioDecoder | None = None
        self._encoder: Any = None
        self._fifo: Any = None
        #: Video-timeline time of the first sample since the encoder opened.
        self._base: int | None = None
        self._written = 0  # samples decoded since then
        self._encoded = 0  # samples handed to the encoder since then
        self.frames = 0

    def add(self, packet: EncodedPacket) -> None:
        """Queue one source packet whose ``timestamp`` is on the video's timeline."""
        self._worker.submit(self._transcode, packet)

    def close(self) -> None:
        self._worker.close()

    def _open(self, codec: str) -> None:
        self._codec = codec
        self._decoder = AudioDecoder(codec)  # int16 mono at 48 kHz
        encoder: Any = av.CodecContext.create("aac", "w")
        encoder.sample_rate = AAC_RATE
        encoder.layout = "mono"
        encoder.format = "fltp"
        encoder.bit_rate = 64_000
        encoder.open()
        self._encoder = encoder
        self._fifo = av.AudioFifo()
        self._base = None
        self._written = self._encoded = 0

    def _transcode(self, packet: EncodedPacket) -> None:  # on the worker thread
        codec = codec_of_mime(packet.mime)
        if codec != self._codec:
            self._open(codec)
        assert self._decoder is not None
        samples = self._decoder.decode(packet.data)
        if not samples.size:
            return
        if self._base is None:
            self._base = packet.timestamp
        else:  # where the samples so far end must meet this packet: else start anew
            end = (self._base + self._written * CLOCK // AAC_RATE) & 0xFFFFFFFF
            if abs(((packet.timestamp - end + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)) > CLOCK:
                self._open(codec)
                self._base = packet.timestamp
                samples = self._decoder.decode(packet.data)
        self._written += samples.size
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1).astype(np.float32) / 32768.0, format="fltp", layout="mono"
        )
        frame.sample_rate = AAC_RATE
        self._fifo.write(frame)
        while self._fifo.samples >= AAC_FRAME:
            chunk = self._fifo.read(AAC_FRAME)
            chunk.pts = self._encoded
            self._encoded += AAC_FRAME
            for out in self._encoder.encode(chunk):
                if out.pts is None or out.pts < 0:
                    continue  # the encoder's priming
                data = bytes(out)
                when = (self._base + out.pts * CLOCK // AAC_RATE) & 0xFFFFFFFF
                aac = EncodedPacket(AAC_MIME, adts_header(len(data)) + data, when, False, 0.0)
                self.frames += 1
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                    self._loop.call_soon_threadsafe(self._emit, aac)
