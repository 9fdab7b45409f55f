"""`make demo` works: the demo script runs end to end (here with --once), including the
QR-code provisioning of a second camera, the live player and the memory card."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--once", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"IOTVIDEO_PORT": "0", "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    for shown in (
        "SecretId",
        "ProductId",
        "Tid",
        "AccessId",
        "binding AccessToken",
        "Front door",
        "read ProReadonly.temperature",
        '"stVal": 2',
        "cameraOn",
        "would join Wi-Fi 'demo-home'",
        "online with the token",
        "bound as owner (Garden)",
        "start-up: first_frame",
        "640x360",
        "cloud storage (CreateStorageService)",
        "HLS segments",
        "m3u8 (ffplay it)",
        "days with recordings",
        "seek landed on",
        "complete: True",
        "Web console",
        "/console/",
    ):
        assert shown in out.stdout
    # The second camera was read after it was provisioned and bound by QR code.
    assert out.stdout.count("read ProReadonly.temperature") == 2
    assert (tmp_path / "qr.png").read_bytes().startswith(b"\x89PNG")
    assert "iotvideo cloud stopped" in out.stderr
    # Step 6 wrote a picture and a recording of the live stream.
    assert (tmp_path / "snapshot.jpg").read_bytes().startswith(b"\xff\xd8")
    # Step 8 downloaded a file of the camera's card: MPEG-TS (sync byte 0x47 each 188).
    card_file = (tmp_path / "card-file.ts").read_bytes()
    assert len(card_file) > 188 * 10 and card_file[0] == card_file[188] == 0x47
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            str(tmp_path / "recording.mp4"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert abs(float(probe.stdout) - 5.0) <= 0.5
