"""``iotvideo app events|cloud ...``: cloud storage and events from the shell (JSON on
stdout). Times are UNIX seconds or ISO 8601 (``2026-11-25T08:00:00+08:00``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from iotvideo.cli._common import die, stderr
from iotvideo.cli.app import AccessIdOpt, CloudOpt, Device, TokenOpt, _print, _run, app_app

if TYPE_CHECKING:
    from iotvideo.app import IoTVideo

__all__ = ["cloud_app"]

cloud_app = typer.Typer(
    help="Cloud storage: days with video, recorded ranges, HLS play addresses, downloads.",
    no_args_is_help=True,
)
app_app.add_typer(cloud_app, name="cloud")

SourceOpt = Annotated[int, typer.Option("--source", help="Channel of an NVR (0: the camera).")]


def _time(value: str, flag: str) -> int:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        die(f"{flag} must be UNIX seconds or an ISO 8601 time, not {value!r}", 2)


StartOpt = Annotated[str, typer.Option("--start", help="Start: UNIX seconds or ISO 8601.")]
EndOpt = Annotated[str, typer.Option("--end", help="End: UNIX seconds or ISO 8601.")]


@app_app.command("events")
def events(
    device: Device,
    start: StartOpt = "0",
    end: Annotated[str, typer.Option("--end", help="End (default: now).")] = "",
    type_mask: Annotated[
        list[int] | None,
        typer.Option(
            "--type-mask",
            help="Only events with any bit of this mask; repeat: with every mask given.",
        ),
    ] = None,
    page_size: Annotated[int, typer.Option(min=1, max=50, help="Events per page.")] = 50,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    valid_cloud_storage: Annotated[
        bool, typer.Option(help="Only events within the cloud-storage period.")
    ] = False,
    source: SourceOpt = 0,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
) -> None:
    """Print the device's events, newest first: one JSON object per event (with its
    picture and thumbnail URLs)."""
    import time

    first, last = _time(start, "--start"), _time(end, "--end") if end else int(time.time()) + 1

    async def go(sdk: IoTVideo) -> None:
        upper = last
        while True:
            page = await sdk.vas.get_event_list(
                device, first, upper, page_size, type_mask, valid_cloud_storage, source
            )
            for event in page["list"]:
                url = page["imgUrlPrefix"] + event["imgUrlSuffix"] if event["imgUrlSuffix"] else ""
                thumb = url + page["thumbUrlSuffix"] if url else ""
                _print({**event, "imgUrl": url, "thumbUrl": thumb})
            if page["pageEnd"] or not all_pages or not page["list"]:
                return
            upper = page["list"][-1]["startTime"]

    _run(cloud, access_id, access_token, None, None, go)


@cloud_app.command("days")
def days(
    device: Device,
    timezone: Annotated[int, typer.Option(help="Seconds east of UTC (UTC+8: 28800).")] = 0,
    source: SourceOpt = 0,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
) -> None:
    """Print the days with video: {"list": [day start, UTC seconds...]}."""

    async def go(sdk: IoTVideo) -> None:
        _print({"list": await sdk.vas.get_video_date_list(device, timezone, source)})

    _run(cloud, access_id, access_token, None, None, go)


@cloud_app.command("list")
def ranges(
    device: Device,
    start: StartOpt = "0",
    end: Annotated[str, typer.Option("--end", help="End (default: a day after --start).")] = "",
    source: SourceOpt = 0,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
) -> None:
    """Print the recorded ranges: {"list": [{"start", "end"}...]} (a day at most)."""
    first = _time(start, "--start")
    last = _time(end, "--end") if end else first + 86_400

    async def go(sdk: IoTVideo) -> None:
        _print({"list": await sdk.vas.get_video_play_list(device, first, last, source)})

    _run(cloud, access_id, access_token, None, None, go)


@cloud_app.command("url")
def url(
    device: Device,
    start: StartOpt,
    end: Annotated[str, typer.Option("--end", help="End (0: up to the latest).")] = "0",
    source: SourceOpt = 0,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
) -> None:
    """Print an HLS address for a recorded range, as JSON: {"url", "startTime", "endTime",
    "endflag"}. The URL (an m3u8 playlist) opens in ffplay, VLC or any HLS player until it
    expires."""
    first, last = _time(start, "--start"), _time(end, "--end")

    async def go(sdk: IoTVideo) -> None:
        _print(await sdk.vas.get_video_play_address(device, first, last, source))

    _run(cloud, access_id, access_token, None, None, go)


@cloud_app.command("download")
def download(
    device: Device,
    start: StartOpt,
    end: EndOpt,
    out: Annotated[Path, typer.Option("--out", help="The MP4 file to write.")],
    source: SourceOpt = 0,
    cloud: CloudOpt = None,
    access_id: AccessIdOpt = None,
    access_token: TokenOpt = None,
) -> None:
    """Download a range of the cloud recording to an MP4 (no re-encoding)."""
    from iotvideo.app.cloudplayer import CloudPlayer

    if out.suffix.lower() != ".mp4":
        die(f"--out must end in .mp4, not {out.name!r}", 2)
    first, last = _time(start, "--start"), _time(end, "--end")
    if last <= first:
        die("--end must be after --start", 2)

    async def go(sdk: IoTVideo) -> None:
        player = CloudPlayer(device, first, last, sdk=sdk, source_id=source)
        with Progress(
            TextColumn("downloading"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            console=stderr,
            transient=True,
        ) as progress:
            task = progress.add_task("download", total=last - first)
            path = await player.download(
                out, progress=lambda done, total: progress.update(task, completed=done)
            )
        _print({"path": str(path), "bytes": path.stat().st_size})

    _run(cloud, access_id, access_token, None, None, go)
