"""``iotvideo app play|snapshot|record|talk``: live media from the shell.

Same credentials as the other app commands. ICE uses every interface but loopback unless
``--ice-address`` (or ``IOTVIDEO_ICE_ADDRESSES``, comma-separated) names the addresses to
offer, e.g. ``127.0.0.1`` when the camera runs on the same machine.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from iotvideo.cli._common import die, ip_addresses, stderr
from iotvideo.cli.app import (
    AccessIdOpt,
    CloudOpt,
    Device,
    DeviceTokenOpt,
    TokenOpt,
    _print,
    _run,
    app_app,
)

if TYPE_CHECKING:
    from iotvideo.app import IoTVideo
    from iotvideo.app.player import MonitorPlayer

__all__ = ["IceAddressOpt", "use_ice_addresses"]

IceAddressOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ice-address",
        envvar="IOTVIDEO_ICE_ADDRESSES",
        metavar="ADDRESS",
        callback=ip_addresses,
        help="IP address to offer as an ICE host candidate; repeat for several, or "
        "comma-separate them (default: every interface but loopback).",
        show_default=False,
    ),
]


class Definition(StrEnum):
    low = "low"
    mid = "mid"
    high = "high"


DefinitionOpt = Annotated[
    Definition,
    typer.Option("--definition", help="low (320x180), mid (640x360) or high (1280x720)."),
]
SourceOpt = Annotated[
    str | None, typer.Option("--source", help="Source id of an NVR channel (default: the first).")
]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for the first picture.")]


def use_ice_addresses(addresses: list[str] | None) -> None:
    """Apply ``--ice-address`` (values may be comma-separated)."""
    from iotvideo.media.webrtc import set_host_addresses

    if addresses:
        set_host_addresses([a.strip() for v in addresses for a in v.split(",") if a.strip()])


async def _playing(
    sdk: IoTVideo, device: str, definition: str, source: str | None, timeout: float
) -> MonitorPlayer:
    from iotvideo.app.player import MonitorPlayer

    player = MonitorPlayer(device, sdk=sdk, definition=definition, source_id=source)
    await player.play(timeout=timeout)
    await player.wait_playing(timeout)
    return player


@app_app.command("play")
def play(
    device: Device,
    seconds: Annotated[float, typer.Option(help="Seconds to play.")] = 5.0,
    definition: DefinitionOpt = Definition.low,
    source: SourceOpt = None,
    timeout: TimeoutOpt = 10.0,
    ice_address: IceAddressOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Play the device's live stream for a while; print the start-up trace as JSON.

    The trace gives milliseconds from play() to each stage: signaling, ice, dtls,
    first_packet, first_keyframe, first_frame; then the frames decoded and their size.
    """
    use_ice_addresses(ice_address)

    async def go(sdk: IoTVideo) -> None:
        player = await _playing(sdk, device, definition, source, timeout)
        try:
            await asyncio.sleep(max(0.0, seconds - player.trace.get("first_frame", 0) / 1000))
        finally:
            await player.stop()
        width, height = player.video_size
        _print(
            {
                "device": device,
                "trace_ms": player.trace,
                "frames": player.frames_decoded,
                "width": width,
                "height": height,
                "audio_samples": getattr(player.audio_render, "samples", None),
            }
        )

    _run(cloud, access_id, access_token, device_token, device, go)


@app_app.command("snapshot")
def snapshot(
    device: Device,
    out: Annotated[Path, typer.Option("--out", help="The picture to write: .jpg or .png.")],
    definition: DefinitionOpt = Definition.low,
    source: SourceOpt = None,
    timeout: TimeoutOpt = 10.0,
    ice_address: IceAddressOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Write the device's current picture to a JPEG or PNG file."""
    if out.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        die(f"--out must end in .jpg, .jpeg or .png, not {out.name!r}", 2)
    use_ice_addresses(ice_address)

    async def go(sdk: IoTVideo) -> None:
        player = await _playing(sdk, device, definition, source, timeout)
        try:
            data = await player.snapshot(out)
        finally:
            await player.stop()
        width, height = player.video_size
        _print({"path": str(out), "bytes": len(data), "width": width, "height": height})

    _run(cloud, access_id, access_token, device_token, device, go)


@app_app.command("record")
def record(
    device: Device,
    out: Annotated[Path, typer.Option("--out", help="The MP4 file to write.")],
    seconds: Annotated[float, typer.Option(help="Seconds to record.")] = 10.0,
    definition: DefinitionOpt = Definition.low,
    source: SourceOpt = None,
    timeout: TimeoutOpt = 10.0,
    ice_address: IceAddressOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Record the live stream to an MP4 (H.264 and audio as they arrive, no re-encoding)."""
    if out.suffix.lower() != ".mp4":
        die(f"--out must end in .mp4, not {out.name!r}", 2)
    if seconds <= 0:
        die("--seconds must be more than 0", 2)
    use_ice_addresses(ice_address)

    async def go(sdk: IoTVideo) -> None:
        player = await _playing(sdk, device, definition, source, timeout)
        try:
            await player.start_recording(out)
            started = time.monotonic()
            with Progress(
                TextColumn("recording"),
                BarColumn(),
                TextColumn("{task.completed:.1f}/{task.total:.0f} s"),
                TimeRemainingColumn(),
                console=stderr,
                transient=True,
            ) as progress:
                task = progress.add_task("record", total=seconds)
                while (elapsed := time.monotonic() - started) < seconds:
                    progress.update(task, completed=elapsed)
                    if player.error is not None:
                        raise player.error
                    await asyncio.sleep(min(0.2, seconds - elapsed))
            path = await player.stop_recording()
        finally:
            await player.stop()
        _print({"path": str(path), "seconds": seconds, "frames": player.frames_decoded})

    _run(cloud, access_id, access_token, device_token, device, go)


@app_app.command("talk")
def talk(
    device: Device,
    file: Annotated[Path, typer.Option("--file", help="Audio to say (WAV or any FFmpeg format).")],
    timeout: TimeoutOpt = 10.0,
    ice_address: IceAddressOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Play an audio file through the device's speaker (two-way talk)."""
    from iotvideo.app.modules import FileCapture

    try:
        capture = FileCapture(file)
    except (OSError, ValueError) as exc:
        die(f"cannot read {file}: {exc}", 2)
    except Exception as exc:  # PyAV's errors for files that are not audio
        die(f"cannot read audio from {file}: {exc}", 2)
    seconds = capture.samples.size / 48_000
    use_ice_addresses(ice_address)

    async def go(sdk: IoTVideo) -> None:
        from iotvideo.app.player import MonitorPlayer

        player = MonitorPlayer(device, sdk=sdk)
        player.mute = True
        await player.play(timeout=timeout)
        try:
            await player.start_talking(capture)
            await asyncio.sleep(seconds + 0.3)  # the file's length, and the last packets
            await player.stop_talking()
        finally:
            await player.stop()
        _print({"device": device, "file": str(file), "seconds": round(seconds, 3)})

    _run(cloud, access_id, access_token, device_token, device, go)
