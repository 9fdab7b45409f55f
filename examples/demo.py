"""`make demo`: the cloud on its embedded defaults, a simulated camera, and the app SDK.

1. Starts `iotvideo cloud` on SQLite with its data under `.demo/` and creates a vendor API
   key with `iotvideo keys create`.
2. Through the official `tencentcloud-sdk-python-iotvideo` client: a product with the
   camera's thing model, two devices, an end user bound to the first device, a token.
3. Starts the first device as a simulated camera (`iotvideo device run`).
4. The app SDK logs in as the user and reads the camera's temperature, switches its
   night mode, and runs its `cameraOn` action.
5. QR-code provisioning of the second camera: the app gets a bind token and makes the QR
   code (`.demo/qr.png`); the camera (`iotvideo device provision --scan`) reads it as its
   lens would see a phone screen (`.demo/qr-filmed.png`: tilted, blurred, noisy), joins
   the network and logs in with the token; the app's net-config observer fires; the
   vendor binds it with CreateBinding's BindToken; the app subscribes and reads it.
6. Live media: a MonitorPlayer plays the first camera peer to peer (WebRTC over
   loopback, signaled through the cloud), prints its start-up trace, writes a snapshot
   (`.demo/snapshot.jpg`) and a 5-second recording (`.demo/recording.mp4`, H.264 and
   Opus as they arrived), and talks to the camera with a tone.
7. Cloud storage: the vendor bought a plan for the first camera (CreateStorageService),
   so it records to the cloud in segments; the app lists the recorded ranges and its
   motion events (with pictures) and prints an m3u8 URL that ffplay opens.
8. The memory card: the first camera also records around the clock to its card
   (`.demo/sd-<tid>`); the app lists the days and files, plays a file at 4x with a
   seek, and downloads one (`.demo/card-file.ts`).
9. Prints the web console's URL and the demo user's AccessId and AccessToken to paste
   into its sign-in form.

Then it keeps the cloud and the cameras running until Ctrl-C. `--once` stops after step 8
(the test suite runs it so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotvideo.v20191126 import iotvideo_client, models

from iotvideo.app import IoTVideo
from iotvideo.app.modules import ToneCapture
from iotvideo.app.player import MonitorPlayer
from iotvideo.device.simulator import DEMO_MODEL, as_filmed
from iotvideo.media.webrtc import set_host_addresses
from iotvideo.protocol.errors import IVError

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def _port() -> int:
    wanted = int(os.environ.get("IOTVIDEO_PORT", "8080"))
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            return 0  # busy: let the cloud pick a free port
    return wanted


def start_cloud(data: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "iotvideo", "cloud", "--data", str(data), "--port", str(_port())]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.write(line)
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match[1]
    raise SystemExit("the cloud did not start; see the log above")


def create_key(data: Path) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "iotvideo", "keys", "create", "--data", str(data), "--name", "demo"],
        check=True,
        capture_output=True,
        text=True,
    )
    key: dict[str, str] = json.loads(out.stdout)
    return key


def call(client: Any, action: str, **fields: Any) -> Any:
    request = getattr(models, f"{action}Request")()
    request._deserialize(fields)
    return getattr(client, action)(request)


def show(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@dataclass
class Setup:
    client: Any
    devices: list[Any]
    access_id: str
    token: str


def demo(url: str, key: dict[str, str]) -> Setup:
    """Steps 1-2: the vendor's product, devices, user and binding."""
    endpoint = url.removeprefix("http://")
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint))
    client = iotvideo_client.IotvideoClient(
        credential.Credential(key["SecretId"], key["SecretKey"]), "ap-guangzhou", profile
    )
    product = call(
        client,
        "CreateProduct",
        ProductModel="com.example.ipc",
        ProductName="Demo_camera",
        ProductDescription="a simulated camera",
        Features=["ypsxth", "spdxth"],
    ).Data
    call(client, "RunIotModel", ProductId=product.ProductId, IotModel=json.dumps(DEMO_MODEL))
    devices = call(
        client, "CreateDevices", ProductId=product.ProductId, Number=2, NamePrefix="cam"
    ).Data
    user = call(client, "CreateAppUsr", CunionId="demo-user@example.com")
    binding = call(
        client,
        "CreateBinding",
        AccessId=user.AccessId,
        Tid=devices[0].Tid,
        Role="owner",
        Nick="Front door",
    )
    token = call(
        client, "CreateUsrToken", AccessId=user.AccessId, UniqueId="demo-phone", TtlMinutes=1440
    )
    storage = call(
        client, "CreateStorageService", PkgId="yc1m3d", Tid=devices[0].Tid, AccessId=user.AccessId
    )

    show(
        "Vendor API key (iotvideo keys create)",
        [("SecretId", key["SecretId"]), ("SecretKey", key["SecretKey"])],
    )
    show(
        "Product (CreateProduct)",
        [
            ("ProductId", product.ProductId),
            ("ProductName", product.ProductName),
            ("Features", ", ".join(product.FuncCode)),
        ],
    )
    for device in devices:
        info = call(client, "DescribeDevice", Tid=device.Tid).Data
        show(
            f"Device {info.DeviceName} (CreateDevices)",
            [("Tid", device.Tid), ("Certificate", device.Certificate[:48] + "...")],
        )
    show(
        "End user, binding and token",
        [
            ("AccessId", user.AccessId),
            ("bound to", f"{devices[0].Tid} as owner"),
            ("binding AccessToken", binding.AccessToken),
            ("user AccessToken", token.AccessToken),
            ("TerminalId", token.TerminalId),
            ("cloud storage (CreateStorageService)", f"{storage.ServiceId}, 3 days kept"),
        ],
    )
    bound = call(client, "DescribeBindDev", AccessId=user.AccessId).Data
    show("DescribeBindDev", [(b.Tid, f"{b.DeviceName} ({b.Role})") for b in bound])
    return Setup(client, list(devices), user.AccessId, token.AccessToken)


def start_camera(
    data: Path, url: str, certificate: str, how: list[str], name: str = "camera"
) -> subprocess.Popen[str]:
    """`iotvideo device run|provision ...` with the camera's Certificate in a file."""
    cert = data / f"{name}.cert"
    cert.write_text(certificate + "\n")
    cmd = [sys.executable, "-m", "iotvideo", "device", *how, "--cert", str(cert), "--cloud", url]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:
        said.append(line)
        if "would join" in line or " online" in line:
            console.print(f"[bold]{name}[/] {line.strip()}")
        if " online" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep it drained
            return proc
    raise SystemExit(f"the simulated {name} did not come online:\n{''.join(said)}")


async def use_the_app_sdk(url: str, tid: str, access_id: str, token: str) -> None:
    """Step 4: the app SDK reads, writes and acts on the camera."""
    sdk = IoTVideo()
    sdk.setup(url)
    await sdk.register(access_id, token)
    try:
        temperature = await sdk.message.read_property(tid, "ProReadonly.temperature")
        night = await sdk.message.write_property(tid, "ProWritable.nightMode", '{"setVal": 2}')
        answer = await sdk.message.take_action(tid, "Action.cameraOn", '{"ctlVal": 1}')
        show(
            "The app SDK (IoTVideo + MessageMgr)",
            [
                ("link status", sdk.link_status.value),
                ("read ProReadonly.temperature", json.dumps(temperature)),
                ('write ProWritable.nightMode {"setVal": 2}', json.dumps(night)),
                ('action Action.cameraOn {"ctlVal": 1}', json.dumps(answer)),
            ],
        )
    finally:
        await sdk.unregister()


async def play_live(url: str, tid: str, access_id: str, token: str, data: Path) -> None:
    """Step 6: live video and audio, a snapshot, a recording, talk."""
    set_host_addresses(["127.0.0.1"])  # the camera runs on this machine
    sdk = IoTVideo()
    sdk.setup(url)
    await sdk.register(access_id, token)
    player = MonitorPlayer(tid, sdk=sdk, definition="mid")
    try:
        await player.play()
        await player.wait_playing()
        trace = dict(player.trace)
        snapshot = data / "snapshot.jpg"
        await player.snapshot(snapshot)
        recording = data / "recording.mp4"
        await player.start_recording(recording)
        await player.start_talking(ToneCapture(660))
        with console.status("recording 5 s of the camera..."):
            await asyncio.sleep(5)
        await player.stop_talking()
        await player.stop_recording()
        width, height = player.video_size
        frames = player.frames_decoded
    finally:
        await player.stop()
        await sdk.unregister()
    show(
        "Live media (MonitorPlayer, WebRTC peer to peer)",
        [
            *((f"start-up: {stage}", f"{ms:.1f} ms") for stage, ms in trace.items()),
            ("picture", f"{width}x{height}, {frames} frames decoded"),
            ("snapshot", str(snapshot)),
            ("recording (5 s)", f"{recording} ({recording.stat().st_size} bytes)"),
            ("talk", "a 660 Hz tone to the camera's speaker"),
        ],
    )


async def cloud_recording(url: str, tid: str, access_id: str, token: str) -> None:
    """Step 7: what the camera recorded to the cloud, its events, an HLS address."""
    sdk = IoTVideo()
    sdk.setup(url)
    await sdk.register(access_id, token)
    try:
        now = int(time.time())
        with console.status("waiting for the camera's first cloud segments..."):
            async with asyncio.timeout(60):
                while True:
                    ranges = await sdk.vas.get_video_play_list(tid, now - 3600, now + 60)
                    if sum(r["end"] - r["start"] for r in ranges) >= 4:
                        break
                    await asyncio.sleep(0.5)
        start = ranges[0]["start"]
        address = await sdk.vas.get_video_play_address(tid, start, int(time.time()))
        async with httpx.AsyncClient() as http:
            playlist = (await http.get(address["url"])).text
        events = await sdk.vas.get_event_list(tid, now - 3600, int(time.time()) + 60)
        detail = await sdk.vas.get_service_detail_info(tid)
    finally:
        await sdk.unregister()
    show(
        "Cloud storage (VAS)",
        [
            (
                "service status",
                f"{detail['status']} (1: in use), {detail['curOrderStorageDays']} days kept",
            ),
            ("recorded ranges", json.dumps(ranges)),
            ("HLS segments", f"{playlist.count('#EXTINF')} in the playlist"),
            ("events", f"{len(events['list'])} (motion, with pictures)"),
            ("m3u8 (ffplay it)", address["url"]),
        ],
    )


async def memory_card(url: str, tid: str, access_id: str, token: str, data: Path) -> None:
    """Step 8: the camera's own recordings: lists, playback with seek and speed, download."""
    from iotvideo.app.playback import (
        FileDownloader,
        PlaybackPlayer,
        get_playback_list,
        get_record_dates,
    )

    sdk = IoTVideo()
    sdk.setup(url)
    await sdk.register(access_id, token)
    try:
        with console.status("waiting for the camera's first finished file on its card..."):
            async with asyncio.timeout(60):
                while True:
                    try:
                        page = await get_playback_list(tid, sdk=sdk)
                        if len(page.items) >= 2:
                            break
                    except IVError:
                        pass  # 21032: nothing recorded yet
                    await asyncio.sleep(0.5)
        days = await get_record_dates(tid, sdk=sdk)
        item = page.items[0]
        player = PlaybackPlayer(tid, item, item.start_time, sdk=sdk, speed=4)
        await player.play()
        await player.wait_playing()
        first = player.position
        landed = await player.seek(item.start_time + item.duration // 2)
        await asyncio.sleep(1)
        last = player.position
        await player.stop()
        target = data / "card-file.ts"
        target.unlink(missing_ok=True)
        downloader = FileDownloader(tid, sdk=sdk)
        result = await downloader.download_to(target, item.start_time)
        await downloader.stop()
    finally:
        await sdk.unregister()
    show(
        "Memory card (PlaybackPlayer, FileDownloader)",
        [
            ("days with recordings", json.dumps(days)),
            ("files", f"{page.total}, e.g. {item.start_time}..{item.end_time} ms"),
            ("played at 4x from", f"{first} ms (the keyframe at or before the item's start)"),
            ("seek landed on", f"{landed} ms; a second later at {last} ms"),
            ("downloaded", f"{target} ({result.size} bytes, complete: {result.complete})"),
        ],
    )


async def provision_by_qr(
    url: str, setup: Setup, data: Path, cameras: list[subprocess.Popen[str]]
) -> str:
    """Step 5: the second camera, from the box to bound and read, by QR code."""
    device = setup.devices[1]
    sdk = IoTVideo()
    sdk.setup(url)
    await sdk.register(setup.access_id, setup.token)
    try:
        online = sdk.net_config.next_net_cfg_result(device.Tid)
        bind_token = await sdk.net_config.get_bind_token()
        code = sdk.net_config.qrcode.create("demo-home", "demo password", bind_token)
        code.save(data / "qr.png")
        lens = random.Random(1)  # noqa: S311 - distorts a picture; not a key
        as_filmed(code.png, lens).save(data / "qr-filmed.png")
        started = time.perf_counter()
        cameras.append(
            await asyncio.to_thread(
                start_camera,
                data,
                url,
                device.Certificate,
                ["provision", "--scan", str(data / "qr-filmed.png")],
                "camera 2",
            )
        )
        async with asyncio.timeout(30):
            tid = await online
        took = time.perf_counter() - started
        binding = await asyncio.to_thread(
            call,
            setup.client,
            "CreateBinding",
            AccessId=setup.access_id,
            Tid=tid,
            Role="owner",
            Nick="Garden",
            BindToken=bind_token,
        )
        await sdk.net_config.subscribe_device(binding.AccessToken, tid)
        temperature = await sdk.message.read_property(tid, "ProReadonly.temperature")
        show(
            "QR-code provisioning (IVNetConfig)",
            [
                ("bind token (get_bind_token)", bind_token),
                ("QR code (qrcode.create)", f"{data / 'qr.png'}: {code.payload}"),
                ("the camera filmed it", str(data / "qr-filmed.png")),
                ("net-config result", f"{tid} online with the token ({took:.2f} s)"),
                ("CreateBinding BindToken", f"{tid} bound as owner (Garden)"),
                ("read ProReadonly.temperature", json.dumps(temperature)),
            ],
        )
        return str(tid)
    finally:
        await sdk.unregister()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after printing")
    parser.add_argument("--data", type=Path, default=ROOT / ".demo", help="data directory")
    args = parser.parse_args()

    proc, url = start_cloud(args.data)
    cameras: list[subprocess.Popen[str]] = []
    try:
        setup = demo(url, create_key(args.data))
        tid, access_id, token = setup.devices[0].Tid, setup.access_id, setup.token
        cameras.append(
            start_camera(
                args.data,
                url,
                setup.devices[0].Certificate,
                [
                    "run",
                    "--motion-interval",
                    "2",
                    "--ice-address",
                    "127.0.0.1",
                    "--segment-seconds",
                    "2",
                    "--vas-dir",
                    str(args.data / "camera-vas"),
                    "--sd-dir",
                    str(args.data / f"sd-{tid}"),
                    "--sd-file-seconds",
                    "4",
                ],
            )
        )
        asyncio.run(use_the_app_sdk(url, tid, access_id, token))
        second = asyncio.run(provision_by_qr(url, setup, args.data, cameras))
        asyncio.run(play_live(url, tid, access_id, token, args.data))
        asyncio.run(cloud_recording(url, tid, access_id, token))
        asyncio.run(memory_card(url, tid, access_id, token, args.data))
        console.print(
            f"\nThe cloud runs at [bold]{url}[/] with its data in {args.data};"
            f" cameras {tid} and {second} are online."
        )
        show(
            "Web console: open it in a browser on this machine and sign in",
            [("console", f"{url}/console/"), ("AccessId", access_id), ("AccessToken", token)],
        )
        if args.once:
            return 0
        console.print(
            "Try: .venv/bin/iotvideo app watch "
            f"{tid} --cloud {url} --access-id {access_id} --access-token {token}\n"
            "Press Ctrl-C to stop."
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
    except KeyboardInterrupt:
        pass
    finally:
        for child in (*cameras, proc):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for camera in cameras:
            camera.wait(30)
        proc.wait(30)
        assert proc.stderr is not None
        sys.stderr.write(proc.stderr.read())
        proc.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
