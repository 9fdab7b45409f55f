"""The players' replaceable modules (the seed's 高级功能), as protocols with built-ins.

Replace one before ``play()``::

    player.video_render = MyRenderer()          # anything with render(frame)
    player.audio_capture = FileCapture("hello.wav")

Decoders and the recorder run on worker threads (their work blocks); renderers are
called on the event loop with each frame, and must return quickly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import av
import numpy as np

from iotvideo.media.audio import AudioDecoder as _PcmDecoder
from iotvideo.media.audio import AudioEncoder as _PcmEncoder
from iotvideo.media.audio import Tone, codec_of_mime, read_wav
from iotvideo.media.h264 import H264Decoder, H264Encoder
from iotvideo.media.sources import open_audio
from iotvideo.media.testsrc import Stamp, TestPattern

__all__ = [
    "AVRecordable",
    "AudioCapturable",
    "AudioCapture",
    "AudioDecodable",
    "AudioDecoder",
    "AudioEncodable",
    "AudioRender",
    "AudioRenderable",
    "FileCapture",
    "TestCamera",
    "ToneCapture",
    "VideoCapturable",
    "VideoDecodable",
    "VideoDecoder",
    "VideoEncodable",
    "VideoRender",
    "VideoRenderable",
]


@runtime_checkable
class VideoDecodable(Protocol):
    """IVVideoDecodable: H.264 access units in, frames out (on a worker thread)."""

    def decode(self, data: bytes, pts: int) -> list[av.VideoFrame]: ...


@runtime_checkable
class AudioDecodable(Protocol):
    """IVAudioDecodable: one encoded audio frame (``mime`` as in the SDP) to int16 mono
    48 kHz samples (on a worker thread)."""

    def decode(self, mime: str, data: bytes) -> np.ndarray: ...


@runtime_checkable
class VideoRenderable(Protocol):
    """IVVideoRenderable: gets each decoded frame, on the event loop."""

    def render(self, frame: av.VideoFrame) -> None: ...


@runtime_checkable
class AudioRenderable(Protocol):
    """IVAudioRenderable: gets each chunk of decoded samples, on the event loop (not
    while muted)."""

    def render(self, samples: np.ndarray) -> None: ...


@runtime_checkable
class AVRecordable(Protocol):
    """IVAVRecordable: encoded frames in, a file out (on a worker thread)."""

    def start(self, path: str | Path, *, width: int, height: int, audio: str | None) -> None: ...

    def write_video(self, data: bytes, pts: int, keyframe: bool, at: float) -> None: ...

    def write_audio(self, data: bytes, pts: int, rate: int, at: float) -> None: ...

    def stop(self) -> Path | None: ...


@runtime_checkable
class AudioCapturable(Protocol):
    """IVAudioCapturable: PCM for talking, ``count`` int16 mono samples at a time at
    ``rate`` Hz; the iterator may block (it runs on its own thread, paced in real time)."""

    def chunks(self, rate: int, count: int) -> Iterator[np.ndarray]: ...


@runtime_checkable
class AudioEncodable(Protocol):
    """IVAudioEncodable: PCM to packets of one codec (``codec``: opus, pcmu or pcma)."""

    codec: str

    def encode(self, samples: np.ndarray) -> list[av.Packet[Any]]: ...


@runtime_checkable
class VideoCapturable(Protocol):
    """IVVideoCapturable: RGB pictures for two-way video; blocking iterator, one per
    frame interval (the caller paces it)."""

    def frames(self, width: int, height: int) -> Iterator[np.ndarray]: ...


@runtime_checkable
class VideoEncodable(Protocol):
    """IVVideoEncodable: pictures to H.264 packets; ``force_keyframe`` for the next one."""

    def encode(self, image: np.ndarray, pts: int) -> list[av.Packet[Any]]: ...

    def force_keyframe(self) -> None: ...


# Built-ins


class VideoDecoder(H264Decoder):
    """IVVideoDecoder: FFmpeg's H.264 decoder."""


class AudioDecoder:
    """IVAudioDecoder: Opus and G.711 by FFmpeg, resampled to 48 kHz mono."""

    def __init__(self) -> None:
        self._decoders: dict[str, _PcmDecoder] = {}

    def decode(self, mime: str, data: bytes) -> np.ndarray:
        codec = codec_of_mime(mime)
        if codec not in self._decoders:
            self._decoders[codec] = _PcmDecoder(codec)
        return self._decoders[codec].decode(data)


class VideoRender:
    """IVVideoRender: keeps the latest frame and calls ``on_frame`` callbacks with it."""

    def __init__(self, on_frame: Callable[[av.VideoFrame], object] | None = None) -> None:
        self.last_frame: av.VideoFrame | None = None
        self.frames = 0
        self.callbacks: list[Callable[[av.VideoFrame], object]] = [on_frame] if on_frame else []

    def render(self, frame: av.VideoFrame) -> None:
        self.last_frame = frame
        self.frames += 1
        for callback in list(self.callbacks):
            callback(frame)


class AudioRender:
    """IVAudioRender: no speaker on a server; keeps the level and the last second, and
    calls ``on_samples`` callbacks (feed them to a sound card if you have one)."""

    def __init__(self, on_samples: Callable[[np.ndarray], object] | None = None) -> None:
        self.samples = 0
        self.level = 0.0
        self.recent = np.zeros(0, dtype=np.int16)
        self.callbacks: list[Callable[[np.ndarray], object]] = [on_samples] if on_samples else []

    def render(self, samples: np.ndarray) -> None:
        self.samples += samples.size
        self.level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) / 32768
        self.recent = np.concatenate([self.recent, samples])[-48_000:]
        for callback in list(self.callbacks):
            callback(samples)


class ToneCapture:
    """Talk with a sine wave (tests, demos)."""

    def __init__(self, frequency: float = 440.0) -> None:
        self.frequency = frequency

    def chunks(self, rate: int, count: int) -> Iterator[np.ndarray]:
        tone = Tone(self.frequency, rate=rate)
        while True:
            yield tone.next_samples(count)


class FileCapture:
    """Talk with an audio file (any format FFmpeg reads), once through, then silence."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.samples = read_wav(self.path)
        self.done = asyncio.Event()

    def chunks(self, rate: int, count: int) -> Iterator[np.ndarray]:
        pcm = self.samples if rate == 48_000 else self.samples[:: 48_000 // rate]
        for i in range(0, pcm.size, count):
            chunk = pcm[i : i + count]
            yield np.pad(chunk, (0, count - chunk.size)) if chunk.size < count else chunk
        while True:
            yield np.zeros(count, dtype=np.int16)


class AudioCapture:
    """IVAudioCapture: a capture device by URI (``alsa:default``, ``pulse:default``)."""

    def __init__(self, uri: str = "pulse:default") -> None:
        self.uri = uri

    def chunks(self, rate: int, count: int) -> Iterator[np.ndarray]:
        stream = open_audio(self.uri)
        assert stream is not None
        return stream.pcm(rate, count)


class AudioEncoder(_PcmEncoder):
    """IVAudioEncoder: Opus (default) or G.711 by FFmpeg."""


class VideoEncoder(H264Encoder):
    """IVVideoEncoder: libx264, low latency."""


class TestCamera:
    """A camera that films the test pattern (its stamp tells who and when); ``label``
    tells two cameras apart after ``switch_camera``."""

    __test__ = False

    def __init__(self, label: int = 0) -> None:
        self.label = label

    def frames(self, width: int, height: int) -> Iterator[np.ndarray]:
        import time

        pattern = TestPattern(width, height)
        count = self.label << 16
        while True:
            yield pattern.frame(Stamp(int(time.time() * 1000), count))
            count += 1
