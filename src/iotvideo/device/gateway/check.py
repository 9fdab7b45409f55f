"""``iotvideo gateway check``: a config file's problems, then each channel's camera
probed (codec, size, frame rate), one line per channel. Blocking; the probes run in
threads, several at once."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av

from iotvideo.device.gateway.config import load_config
from iotvideo.device.gateway.runner import redact
from iotvideo.media.sources import DEFINITIONS

__all__ = ["check_config", "probe"]

#: Seconds a camera has to answer a probe.
PROBE_TIMEOUT = 10


def probe(uri: str) -> str:
    """``"h264 1920x1080 25 fps"``, or raises ValueError saying why the source is unusable."""
    if uri.startswith("testsrc:"):
        query = {k: v[-1] for k, v in parse_qs(urlsplit(uri).query).items()}
        width, height = DEFINITIONS["low"]
        if "size" in query:
            width, height = (int(v) for v in query["size"].lower().split("x"))
        return f"h264 {width}x{height} {float(query.get('fps', 15)):g} fps (test pattern)"
    options = {"rtsp_transport": "tcp"} if uri.lower().startswith(("rtsp://", "rtsps://")) else {}
    location = uri.removeprefix("file:").removeprefix("//") if uri.startswith("file:") else uri
    fmt = "v4l2" if uri.startswith("v4l2:") else None
    location = location.removeprefix("v4l2:")
    try:
        container: Any = av.open(location, format=fmt, options=options, timeout=PROBE_TIMEOUT)
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"cannot open: {exc}") from None
    try:
        if not container.streams.video:
            raise ValueError("no video")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        line = f"{codec} {stream.width}x{stream.height} {rate:g} fps"
        if codec != "h264":
            raise ValueError(f"{line}: only H.264 passes through")
        return line
    finally:
        container.close()


def check_config(
    path: Path, *, on_line: Callable[[str], object] = print, env: dict[str, str] | None = None
) -> tuple[list[str], bool]:
    """Every line said (each also handed to ``on_line`` as it comes), and whether all is
    well. :class:`~iotvideo.device.gateway.config.ConfigError` for an unusable file."""
    config = load_config(path, env=env)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        on_line(line)

    for problem in config.problems:
        say(redact(problem))
    ok = not config.problems
    jobs = [
        (device, channel, uri, what)
        for device in config.devices
        for channel in device.channels
        for uri, what in ((channel.video, "video"), (channel.detect, "detect"))
        if uri is not None
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [pool.submit(probe, uri) for _, _, uri, _ in jobs]
        for (device, channel, uri, what), result in zip(jobs, results, strict=True):
            where = f"{device.name} channel {channel.number} {what} {redact(uri)}"
            try:
                say(f"{where}: {result.result()}")
            except ValueError as exc:
                ok = False
                say(redact(f"{where}: {exc}"))  # FFmpeg's message repeats the URL
    if not config.devices:
        say(f"{path}: no device can run")
        ok = False
    return lines, ok
