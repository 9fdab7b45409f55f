"""``iotvideo app playback days|list|play`` and ``iotvideo app download``: the device's
memory card from the shell.

Same credentials and ICE options as the other app commands. Times (``--at``, ``--start``,
``--end``, FILE_TIME) are UNIX milliseconds or an ISO 8601 date/time (local time unless it
carries an offset, e.g. ``2026-12-01T08:30`` or ``2026-12-01T08:30:00+08:00``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from iotvideo.cli._common import die, stderr
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
from iotvideo.cli.media import IceAddressOpt, SourceOpt, use_ice_addresses

if TYPE_CHECKING:
    from iotvideo.app import IoTVideo

__all__ = ["parse_time"]

playback_app = typer.Typer(
    help="The device's memory card: days with recordings, the recording files of a time "
    "range, and playback with seek and speed.",
    no_args_is_help=True,
)
app_app.add_typer(playback_app, name="playback")


def parse_time(value: str) -> int:
    """UNIX ms, or an ISO 8601 date/time (local unless it has an offset), as UNIX ms."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither UNIX milliseconds nor an ISO date/time (e.g. 2026-12-01T08:30)"
        ) from None
    return int(moment.timestamp() * 1000)


TimeArg = Annotated[
    int,
    typer.Argument(
        parser=parse_time,
        metavar="FILE_TIME",
        help="The file's start: UNIX ms as `playback list` prints it, or an ISO time.",
        show_default=False,
    ),
]


def _time_option(name: str, text: str) -> Any:
    return typer.Option(name, parser=parse_time, metavar="T", help=text, show_default=False)


@playback_app.command("days")
def days(
    device: Device,
    month: Annotated[
        str | None,
        typer.Option("--month", metavar="YYYY-MM", help="The month (default: this month)."),
    ] = None,
    source: SourceOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Print the days of a month that have recordings on the card (local time)."""
    month = month or time.strftime("%Y-%m")
    try:
        datetime.strptime(month, "%Y-%m")
    except ValueError:
        die(f"--month must be YYYY-MM, not {month!r}", 2)

    async def go(sdk: IoTVideo) -> None:
        from iotvideo.app.playback import get_record_dates

        found = await get_record_dates(device, month, sdk=sdk, source_id=source)
        _print({"device": device, "month": month, "days": found})

    _run(cloud, access_id, access_token, device_token, device, go)


@playback_app.command("list")
def list_items(
    device: Device,
    start: Annotated[int | None, _time_option("--start", "From (default: 24 h ago).")] = None,
    end: Annotated[int | None, _time_option("--end", "Until (default: now).")] = None,
    page: Annotated[int, typer.Option(min=0, help="Page, from 0.")] = 0,
    per_page: Annotated[int, typer.Option(min=1, max=500, help="Items per page.")] = 100,
    source: SourceOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Print the recording files of a time range: each with start and end (UNIX ms).

    No recordings in the range is error 21032.
    """
    now = int(time.time() * 1000)
    end = end if end is not None else now + 1000
    start = start if start is not None else end - 86_400_000
    if start >= end:
        die("--start must be before --end", 2)

    async def go(sdk: IoTVideo) -> None:
        from iotvideo.app.playback import get_playback_list

        found = await get_playback_list(
            device, start, end, page=page, per_page=per_page, sdk=sdk, source_id=source
        )
        _print(
            {
                "device": device,
                "items": [i.as_dict() for i in found.items],
                "total": found.total,
                "page": found.page,
                "pages": found.pages,
            }
        )

    _run(cloud, access_id, access_token, device_token, device, go)


@playback_app.command("play")
def play(
    device: Device,
    at: Annotated[
        int, _time_option("--at", "Where to start (lands on the keyframe at or before).")
    ],
    speed: Annotated[float, typer.Option(min=0.5, max=32.0, help="0.5 to 32.")] = 1.0,
    seconds: Annotated[float, typer.Option(min=0.1, help="Seconds to play.")] = 5.0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the first picture.")] = 10.0,
    source: SourceOpt = None,
    ice_address: IceAddressOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Play the card from a time at a speed; print JSON: first_frame_ms (from the command's
    start to the first decoded frame), frames, position_start and position_end (recording
    time, UNIX ms, of the first and last frame shown), and whether the recordings ended."""
    started = time.monotonic()
    use_ice_addresses(ice_address)

    async def go(sdk: IoTVideo) -> None:
        from iotvideo.app.playback import PlaybackPlayer

        player = PlaybackPlayer(device, None, at, sdk=sdk, speed=speed, source_id=source)
        first: dict[str, Any] = {}
        last: dict[str, Any] = {}
        done = asyncio.Event()

        def shown(_player: Any, position: int) -> None:
            if not first:
                first["ms"] = round((time.monotonic() - started) * 1000, 1)
                first["position"] = position
            last["position"] = position

        player.delegate = type(
            "Delegate",
            (),
            {
                "player_did_update_position": lambda _s, p, ms: shown(p, ms),
                "player_did_reach_end": lambda _s, _p, _ms: done.set(),
            },
        )()
        await player.play(timeout=timeout)
        try:
            await player.wait_playing(timeout)
            with_deadline = asyncio.ensure_future(done.wait())
            try:
                await asyncio.wait({with_deadline}, timeout=seconds)
            finally:
                with_deadline.cancel()
            if player.error is not None:
                raise player.error
        finally:
            await player.stop()
        _print(
            {
                "device": device,
                "at": at,
                "speed": speed,
                "first_frame_ms": first.get("ms"),
                "frames": player.frames_decoded,
                "position_start": first.get("position"),
                "position_end": last.get("position"),
                "ended": player.reached_end,
                "width": player.video_size[0],
                "height": player.video_size[1],
            }
        )

    _run(cloud, access_id, access_token, device_token, device, go)


@app_app.command("download")
def download(
    device: Device,
    file_time: TimeArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Where to write the file (MPEG-TS). When it holds part of the file already, "
            "the download resumes from its size.",
        ),
    ],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the device.")] = 10.0,
    source: SourceOpt = None,
    ice_address: IceAddressOpt = None,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
    device_token: DeviceTokenOpt = None,
) -> None:
    """Download a recording file from the card (FILE_TIME: the item's start, as `playback
    list` prints it), with a progress bar; resumes a partial file."""
    if out.is_dir():
        die(f"--out is a directory; give a file name, e.g. {out / f'{file_time}.ts'}", 2)
    use_ice_addresses(ice_address)

    async def go(sdk: IoTVideo) -> None:
        from iotvideo.app.playback import FileDownloader

        downloader = FileDownloader(device, sdk=sdk, source_id=source)
        held = out.stat().st_size if out.exists() else 0
        started = time.monotonic()
        with Progress(
            TextColumn("downloading"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
        ) as progress:
            task = progress.add_task("download", total=None, completed=held)

            def moved(have: int, size: int) -> None:
                progress.update(task, completed=have, total=size or None)

            try:
                result = await downloader.download_to(
                    out, file_time, progress=moved, timeout=timeout
                )
            finally:
                await downloader.stop()
        seconds = time.monotonic() - started
        _print(
            {
                "path": str(out),
                "size": result.size,
                "resumed_from": result.offset,
                "received": result.received,
                "complete": result.complete,
                "seconds": round(seconds, 3),
                "mb_per_s": round(result.received / max(seconds, 1e-6) / 1e6, 2),
            }
        )

    _run(cloud, access_id, access_token, device_token, device, go)
