"""The import-time check of the aiortc internals that media/webrtc.py adapts."""

from __future__ import annotations

import subprocess
import sys

import pytest

HIDE = {
    # A method an adaptation replaces, removed from its class.
    "method": "from aiortc.jitterbuffer import JitterBuffer\ndel JitterBuffer._remove_frame\n",
    # A name-mangled instance attribute: its assignment gone from __init__.
    "attribute": (
        "from aiortc import RTCRtpReceiver\n"
        "def __init__(self, kind, transport):\n"
        "    self._RTCRtpReceiver__decoder_queue = None\n"
        "RTCRtpReceiver.__init__ = __init__\n"
    ),
}


@pytest.mark.parametrize(
    ("hidden", "named"),
    [("method", "JitterBuffer._remove_frame"), ("attribute", "RTCRtpReceiver.__decoder_error")],
)
def test_a_missing_internal_fails_at_import_naming_it(hidden: str, named: str) -> None:
    code = HIDE[hidden] + "import iotvideo.media.webrtc\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("iotvideo.media.webrtc.UnsupportedAiortcError: iotvideo needs aiortc")
    assert named in last
    assert "pip install 'aiortc>=" in last


def test_the_installed_aiortc_passes() -> None:
    from iotvideo.media.webrtc import check_internals

    check_internals()
