"""The gateway's config file: a full example reads as written; each kind of bad entry
(a missing certificate, a duplicate Tid, an unknown key, a zone out of range, a bad
number) is one line naming it, and the other entries still run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iotvideo.device.gateway.config import ConfigError, load_config
from iotvideo.device.gateway.motion import WHOLE
from iotvideo.protocol.certificate import DeviceCertificate

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"


def cert(folder: Path, tid: str) -> str:
    (folder / "certs").mkdir(exist_ok=True)
    text = DeviceCertificate(tid, "PID1", os.urandom(32)).to_string()
    (folder / "certs" / f"{tid}.cert").write_text(text + "\n")
    return f"certs/{tid}.cert"


def write(folder: Path, text: str) -> Path:
    path = folder / "cameras.toml"
    path.write_text(text)
    return path


def test_a_camera_and_an_nvr(tmp_path: Path) -> None:
    cam, nvr = cert(tmp_path, "CAM1"), cert(tmp_path, "NVR1")
    config = load_config(
        write(
            tmp_path,
            f"""
cloud = ["https://cloud.example.com", "https://cloud2.example.com"]
[[device]]
cert = "{cam}"
max_viewers = 2
[[device.channel]]
video = "rtsp://user:pass@192.0.2.20/main"
detect = "rtsp://user:pass@192.0.2.20/sub"
audio = "none"
card = {{ dir = "card/cam", max_bytes = 8_000_000_000, max_days = 7 }}
[device.channel.motion]
enabled = true
sensitivity = 0.7
min_area = 0.02
cooldown = 5
zones = [[[0,0],[0.5,0],[0.5,1]]]
[[device]]
cert = "{nvr}"
[[device.channel]]
video = "testsrc:"
[[device.channel]]
video = "testsrc:"
motion = {{ enabled = false }}
""",
        ),
        env={},
    )
    assert config.problems == ()
    assert config.cloud == ("https://cloud.example.com", "https://cloud2.example.com")
    assert config.data == tmp_path / "gateway-data"
    camera, recorder = config.devices
    assert (camera.tid, camera.max_viewers, len(camera.channels)) == ("CAM1", 2, 1)
    one = camera.channels[0]
    assert one.detect == "rtsp://user:pass@192.0.2.20/sub"
    assert one.card is not None and one.card.dir == tmp_path / "card" / "cam"
    assert (one.card.max_bytes, one.card.max_days) == (8_000_000_000, 7)
    assert (one.motion.sensitivity, one.motion.min_area, one.motion.cooldown) == (0.7, 0.02, 5)
    assert one.motion.zones == (((0.0, 0.0), (0.5, 0.0), (0.5, 1.0)),)
    assert [c.number for c in recorder.channels] == [1, 2]
    assert recorder.channels[0].motion.zones == (WHOLE,)
    assert recorder.channels[1].motion.enabled is False


def test_the_documented_example_reads_without_a_problem(tmp_path: Path) -> None:
    """docs/gateway.md's example, with its certificate files made."""
    text = DOC.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    for line in text.splitlines():
        if line.startswith("cert = "):
            cert(tmp_path, line.split('"')[1].removeprefix("certs/").removesuffix(".cert"))
    config = load_config(write(tmp_path, text), env={})
    assert config.problems == ()
    assert len(config.devices) == 2 and len(config.devices[1].channels) == 4


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ('cert = "certs/NOPE.cert"\n[[device.channel]]\nvideo = "testsrc:"', "cannot read"),
        ('cert = "{dup}"\n[[device.channel]]\nvideo = "testsrc:"', "is device 1"),
        ('cert = "{other}"\ncolour = "red"\n[[device.channel]]\nvideo = "testsrc:"', "colour"),
        ('cert = "{other}"', "at least one [[device.channel]]"),
        (
            'cert = "{other}"\nmax_viewers = 0\n[[device.channel]]\nvideo = "testsrc:"',
            "max_viewers",
        ),
        ('cert = "{other}"\n[[device.channel]]\nvideo = "http://x"', "is no source"),
        (
            'cert = "{other}"\n[[device.channel]]\nvideo = "testsrc:"\n'
            "motion = { zones = [[[0,0],[1.4,0],[1,1]]] }",
            "motion.zones[0][1]: [1.4, 0] is outside the picture",
        ),
    ],
    ids=[
        "missing-cert",
        "duplicate-tid",
        "unknown-key",
        "no-channel",
        "bad-number",
        "bad-source",
        "zone-out-of-range",
    ],
)
def test_a_bad_device_is_one_line_and_the_others_run(tmp_path: Path, entry: str, says: str) -> None:
    good = cert(tmp_path, "GOOD")
    other = cert(tmp_path, "OTHER")
    bad = entry.replace("{dup}", good).replace("{other}", other)
    config = load_config(
        write(
            tmp_path,
            f'cloud = "http://127.0.0.1:1"\n[[device]]\ncert = "{good}"\n'
            f'[[device.channel]]\nvideo = "testsrc:"\n[[device]]\n{bad}\n',
        ),
        env={},
    )
    assert [d.tid for d in config.devices] == ["GOOD"]
    (line,) = config.problems
    assert "device 2" in line and says in line and "does not run" in line, line


def test_a_bad_channel_leaves_its_device_s_other_channels(tmp_path: Path) -> None:
    nvr = cert(tmp_path, "NVR")
    config = load_config(
        write(
            tmp_path,
            f'cloud = "http://127.0.0.1:1"\n[[device]]\ncert = "{nvr}"\n'
            '[[device.channel]]\nvideo = "testsrc:"\n'
            '[[device.channel]]\nvideo = "testsrc:"\nmotion = { sensitivity = 2 }\n'
            '[[device.channel]]\nnumber = 1\nvideo = "testsrc:"\n'
            '[[device.channel]]\nvideo = "testsrc:"\n',
        ),
        env={},
    )
    assert [c.number for c in config.devices[0].channels] == [1, 4]
    assert len(config.problems) == 2
    assert (
        "device 1 (certs/NVR.cert, NVR): channel 2: motion.sensitivity: 2 is outside 0..1"
        in (config.problems[0])
    )
    assert "channel 3: number 1 is taken" in config.problems[1]


def test_the_cloud_from_the_environment_and_files_refused_whole(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert load_config(path, env={"IOTVIDEO_CLOUD": "http://a:1 http://b:2"}).cloud == (
        "http://a:1",
        "http://b:2",
    )
    with pytest.raises(ConfigError, match="names the cloud"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="not TOML"):
        load_config(write(tmp_path, "cloud = ["), env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml", env={})
    unknown = load_config(write(tmp_path, 'cloud = "http://a:1"\ncameras = 3\n'), env={})
    assert unknown.problems == (f"{path}: unknown key 'cameras' (ignored)",)
