"""The README's Python snippets run exactly as written, in order, in one namespace holding
the names the README says they use, against a real cloud and a simulated camera with a
memory card."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import time
from pathlib import Path
from typing import Any

import pytest

from iotvideo.device.card import Card, fill_test_recording
from iotvideo.device.media import DeviceMedia
from tests.link.world import device_client, make_world
from tests.support import Cloud, loopback_ice

ROOT = Path(__file__).resolve().parents[1]


def snippets() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)


async def run(source: str, names: dict[str, Any]) -> None:
    code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, names)  # noqa: S307 - our own README, the point of the test
    if inspect.iscoroutine(result):
        await result


async def test_the_readme_snippets_run_as_written(
    sqlite_cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(snippets()) >= 6
    monkeypatch.chdir(tmp_path)  # they write qr.png, now.jpg, clip.mp4, clip.ts here
    world = await asyncio.to_thread(make_world, sqlite_cloud, devices=2)
    card = Card(tmp_path / "card", file_seconds=10)
    start = (int(time.time()) - 3600) * 1000
    await asyncio.to_thread(card.mount)
    await asyncio.to_thread(fill_test_recording, card, start, 40)
    names: dict[str, Any] = {
        "cloud_url": sqlite_cloud.url,
        "cloud_host": sqlite_cloud.url.removeprefix("http://"),
        "cloud_protocol": "http",
        "secret_id": world.key[0],
        "secret_key": world.key[1],
        "access_id": world.owner.access_id,
        "access_token": world.owner.token,
        "tid": world.device.tid,
        "certificate": world.devices[1].certificate,
        "start_ms": start,
        "end_ms": start + 40_000,
        "t": start + 5_000,
        "t2": start + 32_000,
    }

    def camera(dc: Any) -> None:
        dc.on_write("nightMode")(lambda value: value)
        dc.on_action("cameraOn")(lambda value: {"cameraOn": value})

    with loopback_ice():
        async with device_client(sqlite_cloud.url, world.device, camera) as dc:
            media = DeviceMedia(dc, card=card, card_recording=False)
            try:
                for source in snippets():
                    await run(source, names)
                # The blocking face, called as a script would: on a thread of its own.
                await asyncio.to_thread(names["script"])
            finally:
                sdk = names.get("sdk")
                for connection in list(getattr(sdk, "connections", ())):
                    await connection.disconnect()
                if sdk is not None:
                    await sdk.unregister()
                if "device" in names:
                    await names["device"].stop()
                await media.close()
                card.close()
    assert (tmp_path / "qr.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "now.jpg").read_bytes().startswith(b"\xff\xd8")
    assert (tmp_path / "sync.jpg").read_bytes().startswith(b"\xff\xd8")
    assert (tmp_path / "clip.ts").read_bytes()[:1] == b"\x47"
    assert isinstance(names["days"], list) and names["page"].total == 4
