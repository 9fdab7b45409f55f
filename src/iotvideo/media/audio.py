"""Audio: tones, Opus and G.711 encoding and decoding, WAV sinks, frequency measurement.

WebRTC carries Opus (48 kHz clock) or G.711 (PCMU/PCMA, 8 kHz). Every encoder here
turns 20 ms of PCM into one packet with its pts in the codec's clock, so the same packet
can go to every viewer (:class:`iotvideo.media.webrtc.PacketTrack`).

Encoding and decoding are CPU work, if light: run them off the event loop.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

__all__ = [
    "CODECS",
    "AudioDecoder",
    "AudioEncoder",
    "Tone",
    "WavSink",
    "dominant_frequency",
]

#: Our codec names, their WebRTC MIME types, clock rates and PyAV codecs.
CODECS: dict[str, tuple[str, int, str]] = {
    "opus": ("audio/opus", 48_000, "libopus"),
    "pcmu": ("audio/PCMU", 8_000, "pcm_mulaw"),
    "pcma": ("audio/PCMA", 8_000, "pcm_alaw"),
}
_BY_MIME = {mime.lower(): name for name, (mime, _, _) in CODECS.items()}

#: Milliseconds of audio per packet.
PACKET_MS = 20


def codec_of_mime(mime: str) -> str:
    """``audio/opus`` -> ``opus``; ValueError for codecs we do not carry."""
    try:
        return _BY_MIME[mime.lower()]
    except KeyError:
        raise ValueError(f"unsupported audio codec {mime}") from None


class Tone:
    """A sine wave, 20 ms at a time, as int16 mono samples."""

    def __init__(self, frequency: float = 440.0, *, rate: int = 48_000, level: float = 0.3):
        self.frequency, self.rate, self.level = frequency, rate, level
        self._n = 0

    def next_samples(self, count: int | None = None) -> np.ndarray:
        count = count or self.rate * PACKET_MS // 1000
        t = (np.arange(count) + self._n) / self.rate
        self._n += count
        return (np.sin(2 * math.pi * self.frequency * t) * self.level * 32767).astype(np.int16)


class AudioEncoder:
    """PCM (int16 mono at the codec's rate) to packets of 20 ms."""

    def __init__(self, codec: str = "opus", *, bitrate: int = 32_000) -> None:
        if codec not in CODECS:
            raise ValueError(f"audio codec must be one of {', '.join(CODECS)}")
        self.codec = codec
        self.mime, self.rate, av_name = CODECS[codec]
        self.time_base = Fraction(1, self.rate)
        ctx: Any = av.CodecContext.create(av_name, "w")
        ctx.sample_rate = self.rate
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.time_base = self.time_base
        if codec == "opus":
            ctx.bit_rate = bitrate
            ctx.options = {"application": "lowdelay", "frame_duration": str(PACKET_MS)}
        self._ctx = ctx
        self._pts = 0

    @property
    def samples_per_packet(self) -> int:
        return self.rate * PACKET_MS // 1000

    def encode(self, samples: np.ndarray) -> list[av.Packet[Any]]:
        """Encode int16 mono samples (any count; the encoder buffers)."""
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1).astype(np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = self.rate
        frame.pts, frame.time_base = self._pts, self.time_base
        self._pts += samples.shape[-1]
        return list(self._ctx.encode(frame))


class AudioDecoder:
    """Packets of one codec to int16 mono PCM at 48 kHz (whatever the codec's rate)."""

    rate = 48_000

    def __init__(self, codec: str = "opus") -> None:
        _, rate, av_name = CODECS[codec]
        decoder_name = "libopus" if codec == "opus" else av_name
        ctx: Any = av.CodecContext.create(decoder_name, "r")
        self._ctx = ctx
        self._ctx.sample_rate = rate
        self._ctx.layout = "mono"
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)

    def decode(self, data: bytes) -> np.ndarray:
        if not data:  # an empty packet would flush (end) the decoder
            return np.zeros(0, dtype=np.int16)
        samples = [
            out.to_ndarray().reshape(-1)
            for frame in self._ctx.decode(av.Packet(data))
            for out in self._resampler.resample(frame)
        ]
        return np.concatenate(samples) if samples else np.zeros(0, dtype=np.int16)


class WavSink:
    """Writes int16 mono 48 kHz PCM to a WAV file (the device's default talk sink)."""

    def __init__(self, path: str | Path, *, rate: int = 48_000) -> None:
        self.path = Path(path)
        self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)

    def __call__(self, samples: np.ndarray) -> None:
        self._wav.writeframes(samples.astype("<i2").tobytes())

    def close(self) -> None:
        self._wav.close()


#: A talk sink: called with each chunk of int16 mono 48 kHz samples from the app.
TalkSink = Callable[[np.ndarray], object]


def read_wav(path: str | Path, rate: int = 48_000) -> np.ndarray:
    """Any audio file PyAV reads, as int16 mono samples at ``rate``."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def dominant_frequency(samples: np.ndarray, rate: int = 48_000) -> float:
    """The strongest frequency in ``samples`` (Hz), to the nearest FFT bin."""
    if samples.size < 2:
        return 0.0
    x = samples.astype(np.float64) * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(x))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / samples.size)
