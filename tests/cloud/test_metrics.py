"""/metrics in the Prometheus text format, who may read it, and JSON log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from iotvideo.cloud import CloudSettings, create_app
from iotvideo.cloud.db import Database
from iotvideo.cloud.db.tables import devices
from iotvideo.cloud.server import JsonFormatter
from tests.inproc import Clock, inproc_cloud
from tests.link.world import app_sdk, device_client, make_world


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return seen.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_link_requests_vendor_actions_and_http(tmp_path: Path) -> None:
    async with inproc_cloud(tmp_path, Clock()) as cloud:
        world = await asyncio.to_thread(make_world, cloud, devices=1)
        tid = world.device.tid
        async with (
            device_client(cloud.url, world.device) as device,
            app_sdk(cloud.url, world.owner) as sdk,
        ):
            await device.report("ProReadonly.temperature", 21.5)
            for _ in range(3):
                await sdk.message.read_property(tid, "ProReadonly.temperature")
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{cloud.url}/healthz")).status_code == 200
                scraped = await http.get(f"{cloud.url}/metrics")
            db = Database(cloud.db)
            try:
                async with db.read() as conn:
                    where = await conn.scalar(
                        select(devices.c.online_instance).where(devices.c.tid == tid)
                    )
            finally:
                await db.close()
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        seen = samples(scraped.text)
        read = value(seen, "iotvideo_link_requests_total", peer="app", op="prop.read", code="0")
        assert read == 3
        assert (
            value(seen, "iotvideo_link_requests_total", peer="device", op="report", code="0") >= 1
        )
        assert value(seen, "iotvideo_link_request_seconds_count", peer="app", op="prop.read") == 3
        assert value(seen, "iotvideo_vendor_actions_total", action="CreateProduct", code="0") == 1
        assert value(seen, "iotvideo_http_requests_total", route="/healthz", status="200") == 1
        assert value(seen, "iotvideo_link_sessions", peer="device") == 1
        assert value(seen, "iotvideo_link_sessions", peer="app") == 1
        assert value(seen, "iotvideo_devices_online") == 1
        assert value(seen, "iotvideo_bus_up") == 1
        assert value(seen, "iotvideo_dependency_up", dependency="database") == 1
        # Group commit: every stored change counted, in no more transactions than changes.
        changes = value(seen, "iotvideo_state_changes_total")
        assert changes >= 2  # the device's login and its report, at least
        assert 1 <= value(seen, "iotvideo_state_commits_total") <= changes
        assert value(seen, "iotvideo_state_queue") == 0
        # The heartbeat's probe came back through the bus (in-process here: quick).
        assert 0 <= value(seen, "iotvideo_bus_lag_seconds") < 1
        assert "iotvideo_bus_lag_seconds" in scraped.text
        assert value(seen, "iotvideo_webhook_pending") == 0  # no vendor endpoint: none queued
        # The instance names itself as the devices table does.
        assert value(seen, "iotvideo_instance_info", id=str(where)) == 1


async def test_metrics_are_for_loopback_or_the_token(tmp_path: Path) -> None:
    settings = CloudSettings(data=tmp_path, metrics_token="s3cret-token")
    app = create_app(settings)
    remote = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://cloud") as http:
        assert (await http.get("/metrics")).status_code == 403
        wrong = {"Authorization": "Bearer nope"}
        assert (await http.get("/metrics", headers=wrong)).status_code == 403
        right = {"Authorization": "Bearer s3cret-token"}
        allowed = await http.get("/metrics", headers=right)
        assert allowed.status_code == 200 and "iotvideo_http_requests_total" in allowed.text
    # Through a proxy on this host (X-Forwarded-For), loopback is not enough.
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=local, base_url="http://cloud") as http:
        assert (await http.get("/metrics")).status_code == 200
        relayed = {"X-Forwarded-For": "203.0.113.9"}
        assert (await http.get("/metrics", headers=relayed)).status_code == 403
        assert (await http.get("/metrics", headers=relayed | right)).status_code == 200
    # Without a token only loopback clients may read.
    closed = create_app(CloudSettings(data=tmp_path))
    remote = httpx.ASGITransport(app=closed, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://cloud") as http:
        refused = await http.get("/metrics", headers={"Authorization": "Bearer "})
        assert refused.status_code == 403


def test_json_log_lines(tmp_path: Path) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "iotvideo.cloud", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "error" and line["logger"] == "iotvideo.cloud"
    assert line["message"] == "failed x" and "ValueError: boom" in line["exc"]
    assert line["time"].endswith("+00:00")
    # The command line: a cloud that cannot start says why in one JSON line.
    command = [sys.executable, "-m", "iotvideo", "cloud", "--data", str(tmp_path)]
    database = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # nothing listens there
    bad = subprocess.run(
        [*command, "--log-format", "json", "--db", database, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    said = [json.loads(text) for text in bad.stderr.splitlines() if text.startswith("{")]
    assert said and said[-1]["level"] == "error" and "database" in said[-1]["message"].lower()
