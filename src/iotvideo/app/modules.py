"""The players' replaceable modules (the seed's 高级功能), as protocols with built-ins.

Replace one before ``play()``::

    player.video_render = MyRenderer()          # anything with render(frame)
    player.audio_capture = FileCapture("hello.wav")

Decoders and the recorder run on worker threads (their work blocks); renderers are
called on the event loop with each frame, and must return quickly.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import av
import numpy as np

from iotvideo.media.audio import AudioDecoder as _PcmDecoder
from iotvideo.media.audio import AudioEncoder as _PcmEncoder
from iotvideo.media.audio import Tone, codec_of_mime, read_wav
from iotvideo.media.h264 import H264Decoder, H264Encoder
from iotvideo.media.sources import capture as _capture
from iotvideo.media.testsrc import Stamp, TestPattern

log = logging.getLogger("iotvideo.app.player")

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
    """IVAudioEncodable: int16 mono PCM at ``rate`` Hz to packets of one codec
    (``codec``: opus, pcmu or pcma, the one the device talks; 21036 otherwise), each
    packet with its pts in the codec's clock (on the talk thread)."""

    @property
    def codec(self) -> str: ...

    @property
    def rate(self) -> int: ...

    def encode(self, samples: np.ndarray) -> list[av.Packet[Any]]: ...


@runtime_checkable
class VideoCapturable(Protocol):
    """IVVideoCapturable: RGB pictures for two-way video; blocking iterator, one per
    frame interval (the caller paces it). ``definition`` (low, mid, high) is the size
    asked for; a module without it is sent at low."""

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
    """IVAudioRender: plays to the default output device through PortAudio when the
    optional ``sounddevice`` package (``pip install 'iotvideo[audio]'``, and the system's
    libportaudio2) and an output device are there; elsewhere (a server, CI) it plays
    nothing and says so once in the log. Either way it keeps the level and the last second
    (``recent``) and calls ``on_samples`` callbacks. ``play=False``: never opens a device.
    """

    def __init__(
        self, on_samples: Callable[[np.ndarray], object] | None = None, *, play: bool = True
    ) -> None:
        self.samples = 0
        self.level = 0.0
        self.recent = np.zeros(0, dtype=np.int16)
        self.callbacks: list[Callable[[np.ndarray], object]] = [on_samples] if on_samples else []
        self.play = play
        #: Whether samples go to a sound card.
        self.playing = False
        self._output: Any = None
        self._tried = False
        self._pending: deque[np.ndarray] = deque(maxlen=25)  # half a second of 20 ms chunks
        self._partial = np.zeros(0, dtype=np.int16)

    def render(self, samples: np.ndarray) -> None:
        self.samples += samples.size
        self.level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) / 32768
        self.recent = np.concatenate([self.recent, samples])[-48_000:]
        if self.play:
            if not self._tried:
                self._tried = True
                self._output = _open_output(self._fill)
                self.playing = self._output is not None
            if self._output is not None:
                self._pending.append(samples)
        for callback in list(self.callbacks):
            callback(samples)

    def _fill(self, out: Any, frames: int, _time: Any, _status: Any) -> None:
        """PortAudio's thread: the next ``frames`` samples (silence when none came)."""
        data = self._partial
        while data.size < frames and self._pending:
            data = np.concatenate([data, self._pending.popleft()])
        chunk, self._partial = data[:frames], data[frames:]
        if chunk.size < frames:
            chunk = np.pad(chunk, (0, frames - chunk.size))
        out[:] = chunk.astype(np.int16).tobytes()

    def close(self) -> None:
        """Release the sound card (the player calls it when it stops)."""
        output, self._output = self._output, None
        self.playing, self._tried = False, False
        if output is not None:
            output.stop()
            output.close()


def _open_output(fill: Callable[..., None]) -> Any:
    """A started PortAudio output stream (48 kHz mono int16), or None without one."""
    try:
        import sounddevice  # type: ignore[import-not-found, unused-ignore]

        sounddevice.query_devices(kind="output")
        stream = sounddevice.RawOutputStream(
            samplerate=48_000, channels=1, dtype="int16", callback=fill, blocksize=960
        )
        stream.start()
        return stream
    except Exception as exc:  # no package, no libportaudio, no device: play nothing
        log.info("audio renderer: no sound output (%s); samples are kept, not played", exc)
        return None


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
    """IVAudioCapture: a capture device by URI (``alsa:default``, ``pulse:default``),
    recorded at ``sample_rate`` (the seed's sampleRate, default 8000) and resampled to
    what the encoder takes."""

    def __init__(self, uri: str = "pulse:default", *, sample_rate: int = 8_000) -> None:
        self.uri = uri
        self.sample_rate = sample_rate

    def chunks(self, rate: int, count: int) -> Iterator[np.ndarray]:
        scheme, _, device = self.uri.partition(":")
        return _capture(scheme, device or "default", self.sample_rate)(rate, count)


class AudioEncoder:
    """IVAudioEncoder: Opus (default) or G.711 by FFmpeg. Set ``audio_type`` (the seed's
    audioType: opus, pcmu, pcma) and ``bitrate`` before talking; the player makes it the
    codec the device talks when they differ."""

    def __init__(self, audio_type: str = "opus", *, bitrate: int = 32_000) -> None:
        self._audio_type = audio_type
        self.bitrate = bitrate
        self._encoder: _PcmEncoder | None = None

    @property
    def audio_type(self) -> str:
        return self._audio_type

    @audio_type.setter
    def audio_type(self, value: str) -> None:
        if value not in ("opus", "pcmu", "pcma"):
            raise ValueError("audio_type: opus, pcmu or pcma")
        if value != self._audio_type:
            self._audio_type, self._encoder = value, None

    #: The seed's name and the protocol's.
    codec = audio_type

    @property
    def rate(self) -> int:
        return 48_000 if self._audio_type == "opus" else 8_000

    def encode(self, samples: np.ndarray) -> list[av.Packet[Any]]:
        if self._encoder is None:
            self._encoder = _PcmEncoder(self._audio_type, bitrate=self.bitrate)
        return self._encoder.encode(samples)


class VideoEncoder:
    """IVVideoEncoder: libx264, low latency. Set ``video_type`` (h264, the only one
    WebRTC peers here share), ``bitrate``, ``fps`` and ``gop`` (seconds between keyframes)
    before the camera opens; the size comes from the first picture."""

    def __init__(self, *, bitrate: int = 400_000, fps: float = 15.0, gop: float = 2.0) -> None:
        self.video_type = "h264"
        self.bitrate, self.fps, self.gop = bitrate, fps, gop
        self._encoder: H264Encoder | None = None
        self._force = False

    def encode(self, image: np.ndarray, pts: int) -> list[av.Packet[Any]]:
        if self.video_type != "h264":
            raise ValueError("video_type: h264")
        height, width = image.shape[:2]
        if self._encoder is None or (self._encoder.width, self._encoder.height) != (width, height):
            self._encoder = H264Encoder(
                width, height, fps=self.fps, bitrate=self.bitrate, gop=self.gop
            )
        if self._force:
            self._encoder.force_keyframe()
            self._force = False
        return self._encoder.encode(image, pts)

    def force_keyframe(self) -> None:
        self._force = True


class TestCamera:
    """A camera that films the test pattern (its stamp tells who and when); ``label``
    tells two cameras apart after ``switch_camera``."""

    __test__ = False

    def __init__(self, label: int = 0, *, definition: str = "low") -> None:
        self.label = label
        #: The size sent (the seed's videoCapture.definition): low, mid or high.
        self.definition = definition

    def frames(self, width: int, height: int) -> Iterator[np.ndarray]:
        import time

        pattern = TestPattern(width, height)
        count = self.label << 16
        while True:
            yield pattern.frame(Stamp(int(time.time() * 1000), count))
            count += 1
