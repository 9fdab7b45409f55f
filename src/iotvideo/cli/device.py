"""``iotvideo device ...``: run the simulated camera."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from iotvideo.cli._common import LogLevel, LogLevelOpt, die, setup_logging, stderr
from iotvideo.cli.media import IceAddressOpt, use_ice_addresses

__all__ = ["device_app"]

device_app = typer.Typer(
    help="Run or provision the demo camera (simulated) with the device SDK; for real "
    "cameras, see `iotvideo gateway`.",
    no_args_is_help=True,
)


CertOpt = Annotated[
    Path, typer.Option("--cert", help="File holding the Certificate CreateDevices returned.")
]
CloudUrlsOpt = Annotated[
    list[str],
    typer.Option(
        "--cloud",
        envvar="IOTVIDEO_CLOUD",
        help="Cloud URL; repeat it to fail over between several.",
    ),
]


@device_app.command("run")
def run(
    cert: CertOpt,
    cloud: CloudUrlsOpt,
    motion_interval: Annotated[
        float, typer.Option(help="Mean seconds between motion events.")
    ] = 30.0,
    temperature_interval: Annotated[
        float, typer.Option(help="Seconds between temperature reports.")
    ] = 10.0,
    video: Annotated[
        str,
        typer.Option(
            help="Video source: testsrc: (options ?fps=15&bitrate=600000&size=WxH), "
            "file:PATH (MP4/TS, looped), rtsp://CAMERA/PATH, v4l2:/dev/video0. H.264 from "
            "files, RTSP and V4L2 is passed through without re-encoding."
        ),
    ] = "testsrc:",
    audio: Annotated[
        str,
        typer.Option(
            help="Audio source: tone:HZ, file:PATH, alsa:DEVICE, pulse:DEVICE or none; add "
            "?codec=pcmu or ?codec=pcma for G.711 (default Opus)."
        ),
    ] = "tone:440",
    max_viewers: Annotated[
        int, typer.Option(min=1, help="Viewers served at once per channel; more get 20007.")
    ] = 4,
    talk_dir: Annotated[
        Path | None,
        typer.Option(help="Write the app's talk audio here, one WAV file per session."),
    ] = None,
    ice_address: IceAddressOpt = None,
    sw_version: Annotated[
        str, typer.Option(help="The firmware version the camera reports (swVer).")
    ] = "1.0.1",
    firmware_dir: Annotated[
        Path | None,
        typer.Option(help="Where firmware upgrades are downloaded (default: a temp folder)."),
    ] = None,
    vas_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where cloud-recording segments and events wait for upload (default: a "
            "folder per device in the temp directory)."
        ),
    ] = None,
    segment_seconds: Annotated[
        float, typer.Option(min=1, help="Length of cloud-recording segments (cut at keyframes).")
    ] = 10.0,
    sd_dir: Annotated[
        Path | None,
        typer.Option(
            help="Record around the clock to this memory-card directory (apps can then list, "
            "play back and download the recordings)."
        ),
    ] = None,
    sd_file_seconds: Annotated[
        float, typer.Option(min=1, help="Length of each recording file on the card.")
    ] = 60.0,
    sd_max_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Bytes the card's recordings may take; the oldest files go first, the one "
            "being written stays (default: "
            "the card's file system, less 5%).",
        ),
    ] = None,
    sd_max_days: Annotated[
        float, typer.Option(min=0.01, help="Days a recording is kept on the card.")
    ] = 30.0,
    log_level: LogLevelOpt = LogLevel.info,
) -> None:
    """Run the demo camera (simulated readings and events) until Ctrl-C.

    This is the demo: its temperature drifts on its own and its motion events come at
    random, whatever is in front of the lens. To bring real cameras and NVRs in, with
    motion detected on their pictures, run `iotvideo gateway --config FILE`
    (docs/gateway.md).

    It has a night mode, an LED, a cameraOn action, a temperature and motion events; it
    serves live video and audio to the app's players, records to the cloud while a
    cloud-storage plan is in use (motion then also raises cloud events with a picture),
    and installs firmware upgrades (downloaded, checked, new version reported). With
    --sd-dir it records continuously to a memory card that apps play back and download.

    Its product needs the simulated camera's thing model: `iotvideo vendor
    publish-model PRODUCT_ID` publishes it (`iotvideo vendor quickstart` does it for
    you). Without it the camera still runs and says what it cannot report.
    """
    from iotvideo.device import DeviceClient
    from iotvideo.device.card import Card
    from iotvideo.device.client import VersionInfo
    from iotvideo.device.cloudrec import CloudRecorder
    from iotvideo.device.media import DeviceMedia
    from iotvideo.device.ota import FirmwareUpdater
    from iotvideo.device.simulator import SimulatedCamera
    from iotvideo.media.sources import SourceError
    from iotvideo.protocol.errors import IVError

    setup_logging(log_level)
    try:
        certificate = cert.read_text().strip()
        client = DeviceClient(certificate, cloud, version=VersionInfo(swVer=sw_version))
    except OSError as exc:
        die(f"cannot read {cert}: {exc.strerror}", 2)
    except ValueError as exc:
        die(f"{cert} does not hold a device Certificate: {exc}", 2)
    camera = SimulatedCamera(
        client, motion_interval=motion_interval, temperature_interval=temperature_interval
    )
    use_ice_addresses(ice_address)
    FirmwareUpdater(client, folder=firmware_dir)
    stderr.print(f"device {client.tid} connecting to {', '.join(cloud)}", highlight=False)

    async def go() -> None:
        card = None
        if sd_dir is not None:
            try:
                card = await Card.open(
                    sd_dir,
                    file_seconds=sd_file_seconds,
                    max_bytes=sd_max_bytes,
                    max_days=sd_max_days,
                )
            except (OSError, sqlite3.Error) as exc:
                die(f"cannot use {sd_dir} as the memory card: {exc}", 2)
        try:
            media = await DeviceMedia.open(
                client,
                video=video,
                audio=audio,
                max_viewers=max_viewers,
                talk_sink=talk_dir,
                card=card,
            )
        except SourceError as exc:
            die(f"{exc}", 2)
        folder = vas_dir or Path(tempfile.gettempdir()) / f"iotvideo-vas-{client.tid}"
        recorder = CloudRecorder(client, media, buffer_dir=folder, segment_seconds=segment_seconds)
        camera.recorder = recorder
        await recorder.start()
        try:
            await camera.run()
        finally:
            await recorder.stop()
            await media.close()
            await client.stop()

    try:
        asyncio.run(go())
    except IVError as exc:
        die(f"{exc.code_name} ({int(exc.code)}): {exc.message}", 1)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@device_app.command("model")
def model() -> None:
    """Print the thing model of the simulated camera (publish it with RunIotModel)."""
    from iotvideo.device.simulator import DEMO_MODEL

    print(json.dumps(DEMO_MODEL, indent=2))


@device_app.command("provision")
def provision(
    cert: CertOpt,
    cloud: CloudUrlsOpt,
    scan: Annotated[
        Path | None, typer.Option("--scan", help="Read the app's QR code from this image.")
    ] = None,
    ap: Annotated[
        bool,
        typer.Option(
            "--ap", help="AP mode: serve the local endpoint until the app sends Wi-Fi settings."
        ),
    ] = False,
    lan: Annotated[
        bool,
        typer.Option("--lan", help="Wired: log in now, announce on the LAN, take bind tokens."),
    ] = False,
    listen: Annotated[
        str, typer.Option(help="Address of the local endpoint (AP and LAN modes).")
    ] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option(help="Port of the local endpoint; 0 picks one.")] = 0,
    announce: Annotated[
        list[str] | None,
        typer.Option(help="Addresses to announce with DNS-SD (default: the listen address)."),
    ] = None,
    log_level: LogLevelOpt = LogLevel.info,
) -> None:
    """Provision the simulated camera (QR image, AP endpoint or wired LAN), then run it.

    Joining the Wi-Fi network is simulated (logged); the camera then logs in carrying the
    app's bind token and keeps running as `iotvideo device run` does, until Ctrl-C.
    """
    from iotvideo.device.provision import Provisioner
    from iotvideo.device.simulator import SimulatedCamera
    from iotvideo.protocol.errors import IVError

    if sum((scan is not None, ap, lan)) != 1:
        die("give exactly one of --scan IMAGE, --ap or --lan", 2)
    setup_logging(log_level)
    try:
        provisioner = Provisioner(
            cert.read_text().strip(), cloud, host=listen, port=port, announce=announce
        )
    except OSError as exc:
        die(f"cannot read {cert}: {exc.strerror}", 2)
    except ValueError as exc:
        die(f"{cert} does not hold a device Certificate: {exc}", 2)

    async def go() -> None:
        if scan is not None:
            client = await provisioner.by_qr(scan)
        elif ap:
            client = await provisioner.by_ap()
        else:
            client = await provisioner.by_lan()
        camera = SimulatedCamera(client)
        try:
            await camera.run()
        finally:
            await client.stop()
            await provisioner.stop()

    try:
        asyncio.run(go())
    except IVError as exc:
        die(f"{exc.code_name} ({int(exc.code)}): {exc.message}", 1)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
