"""The Home Assistant integration's numbers: setup time of an entry with ``--devices``
cameras, and the latency from a camera's report to the Home Assistant state.

    make ha   # once: makes .venv-ha
    .venv-ha/bin/python benchmarks/home_assistant.py [--devices 10] [--reports 100]

Real Home Assistant core (the test harness's ``async_test_home_assistant``, in
``.venv-ha``) with custom_components/iotvideo, against a cloud on loopback run from the
project's virtualenv (``IOTVIDEO_PYTHON``, default ``.venv/bin/python``) with
``--devices`` cameras (``iotvideo vendor quickstart``), each logged in here with the
device SDK (no media: the entities are what is measured).

1. Setup: ``async_setup`` of the config entry until every entity exists (sign-in, one
   ``model.get`` and one ``prop.read`` per device, the platforms), ``--runs`` times; p50.
2. Report to state: ``--reports`` temperature reports, one at a time, each timed from the
   device SDK's ``report`` call to the sensor's new state in Home Assistant; p50 and p95.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from homeassistant import loader  # noqa: E402
from homeassistant.core import Event, HomeAssistant, callback  # noqa: E402
from homeassistant.helpers import entity_registry as er  # noqa: E402
from pytest_homeassistant_custom_component.common import (  # noqa: E402
    MockConfigEntry,
    async_test_home_assistant,
)
from tests_ha.conftest import Platform, Process, _iotvideo  # noqa: E402

from iotvideo.device import DeviceClient  # noqa: E402
from iotvideo.protocol.link import Backoff  # noqa: E402


def start_platform(data: Path, devices: int) -> tuple[Process, Platform]:
    import json

    cloud = Process(
        ["cloud", "--data", str(data), "--port", "0", "--log-level", "warning"],
        ready=r"listening on (http://\S+)",
    )
    assert cloud.match is not None
    url = cloud.match[1]
    key = json.loads(_iotvideo("keys", "create", "--data", str(data)))
    out = data / "quickstart"
    env = {"IOTVIDEO_SECRET_ID": key["SecretId"], "IOTVIDEO_SECRET_KEY": key["SecretKey"]}
    summary = json.loads(
        _iotvideo(
            "vendor", "quickstart", "--out", str(out), "--devices", str(devices), "--cloud", url,
            env=env,
        )
    )  # fmt: skip
    app = dict(
        line.split("=", 1) for line in (out / "app.env").read_text().splitlines() if "=" in line
    )
    return cloud, Platform(
        url,
        data,
        key,
        app["IOTVIDEO_ACCESS_ID"],
        app["IOTVIDEO_ACCESS_TOKEN"],
        [Path(d["CertificateFile"]) for d in summary["Devices"]],
        [str(d["Tid"]) for d in summary["Devices"]],
    )


async def measure(platform: Platform, runs: int, reports: int, config_dir: str) -> None:
    from custom_components.iotvideo.const import (
        CONF_ACCESS_ID,
        CONF_ACCESS_TOKEN,
        CONF_CLOUD_URL,
        DOMAIN,
    )

    from iotvideo.media.webrtc import set_host_addresses

    set_host_addresses(["127.0.0.1"])
    cameras = [
        DeviceClient(cert.read_text(), platform.url, backoff=Backoff(base=0.05, cap=0.5))
        for cert in platform.certificates
    ]
    await asyncio.gather(*(c.start(timeout=30) for c in cameras))
    try:
        setups: list[float] = []
        lags: list[float] = []
        for run in range(runs):
            async with async_test_home_assistant(config_dir=config_dir) as hass:
                hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # load custom_components/
                entry = MockConfigEntry(
                    domain=DOMAIN,
                    data={
                        CONF_CLOUD_URL: platform.url,
                        CONF_ACCESS_ID: platform.access_id,
                        CONF_ACCESS_TOKEN: platform.access_token,
                    },
                )
                entry.add_to_hass(hass)
                began = time.perf_counter()
                assert await hass.config_entries.async_setup(entry.entry_id)
                await hass.async_block_till_done()
                setups.append(time.perf_counter() - began)
                entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
                if run == runs - 1:
                    print(f"{len(platform.tids)} devices, {len(entities)} entities")
                    lags = await report_lags(hass, cameras[0], platform.tids[0], reports)
                assert await hass.config_entries.async_unload(entry.entry_id)
                await hass.async_stop(force=True)
        print(
            f"setup of an entry with {len(platform.tids)} devices, {runs} runs: "
            f"p50 {statistics.median(setups) * 1000:.0f} ms, "
            f"max {max(setups) * 1000:.0f} ms"
        )
        lags.sort()
        print(
            f"device report to Home Assistant state, {len(lags)} reports: "
            f"p50 {statistics.median(lags) * 1000:.2f} ms, "
            f"p95 {lags[int(len(lags) * 0.95) - 1] * 1000:.2f} ms"
        )
    finally:
        await asyncio.gather(*(c.stop() for c in cameras))


async def report_lags(
    hass: HomeAssistant, camera: DeviceClient, tid: str, reports: int
) -> list[float]:
    from custom_components.iotvideo.const import DOMAIN

    sensor = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{tid}_r_temperature")
    assert sensor is not None
    changed: asyncio.Queue[float] = asyncio.Queue()

    @callback
    def on_change(event: Event) -> None:
        if event.data["entity_id"] == sensor:
            changed.put_nowait(time.perf_counter())

    remove = hass.bus.async_listen("state_changed", on_change)
    lags = []
    try:
        for i in range(reports):
            began = time.perf_counter()
            await camera.report("ProReadonly.temperature", 20.0 + i / 10)
            lags.append(await asyncio.wait_for(changed.get(), 10) - began)
    finally:
        remove()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reports", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "cloud"
        data.mkdir()
        config = Path(folder) / "ha"
        config.mkdir()
        cloud, platform = start_platform(data, args.devices)
        try:
            asyncio.run(measure(platform, args.runs, args.reports, str(config)))
        finally:
            cloud.stop()


if __name__ == "__main__":
    main()
