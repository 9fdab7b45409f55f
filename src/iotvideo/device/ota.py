"""Firmware updates on the device: ``Action._otaVersion``, ``Action._otaUpgrade``, and the
cloud's ``ota.upgrade`` push (the vendor's UpgradeDevice).

::

    updater = FirmwareUpdater(device, install=flash)   # flash(path, version), may be async

An upgrade downloads the file the cloud names, reporting ``ProReadonly._otaUpgrade``
(0..100) as it goes (a download that breaks off resumes where it stopped at the next
upgrade to that version), checks its size and MD5, hands it to ``install``, then takes the new
version and reports it (``ProConst._versionInfo.swVer``; also sent at every login), so
the cloud records it. A file of the wrong size or MD5 is refused (20103) and the device
stays on its version.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from iotvideo.device.client import DeviceClient
from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["FirmwareUpdater"]

log = logging.getLogger("iotvideo.device.ota")

PROGRESS = "ProReadonly._otaUpgrade"


class FirmwareUpdater:
    """OTA for ``device``; ``install(path, version)`` applies a verified file."""

    def __init__(
        self,
        device: DeviceClient,
        *,
        install: Callable[[Path, str], Any] | None = None,
        folder: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.device = device
        self.install = install
        self.folder = folder
        self.timeout = timeout
        #: Why the last upgrade failed (None after a success).
        self.last_error: IVError | None = None
        self.upgrades = 0
        self._busy = asyncio.Lock()
        self._task: asyncio.Task[Any] | None = None
        device.on_action("_otaVersion")(self.query)
        device.on_action("_otaUpgrade")(self._upgrade_action)
        device.add_push("ota.upgrade", self._on_push)

    @property
    def version(self) -> str:
        return self.device.version.swVer

    async def query(self, _value: Any = None) -> dict[str, Any]:
        """What the cloud offers this device ({} when it is up to date)."""
        return await self.device.link.request("ota.query", {"current_version": self.version})

    async def _upgrade_action(self, value: Any) -> dict[str, Any]:
        offer = await self.query()
        wanted = value.get("version") if isinstance(value, dict) else None
        if not offer or (wanted and wanted != offer.get("version")):
            raise IVError.of(
                ErrorCode.IVTermErr_msg_user_cmd_version_error,
                f"no new firmware for version {self.version}"
                + (f" (asked for {wanted})" if wanted else ""),
            )
        return await self.upgrade(offer)

    def _on_push(self, data: dict[str, Any]) -> None:
        async def run() -> None:
            try:
                await self.upgrade(data)
            except IVError as exc:
                log.warning(
                    "device %s: upgrade to %s failed: %s", self.device.tid, data.get("version"), exc
                )

        self._task = asyncio.ensure_future(run())

    async def wait(self) -> None:
        """Wait for an upgrade started by the cloud's push."""
        if self._task is not None:
            await self._task

    async def upgrade(self, offer: dict[str, Any]) -> dict[str, Any]:
        """Download, check, install ``offer`` (version, url, size, md5); the new version."""
        if self._busy.locked():
            raise IVError.of(ErrorCode.IVTermErr_msg_gdm_handle_processing, "already upgrading")
        async with self._busy:
            try:
                version, url = str(offer["version"]), str(offer["url"])
                size, md5 = int(offer["size"]), str(offer["md5"]).lower()
            except (KeyError, TypeError, ValueError):
                raise IVError.of(
                    ErrorCode.IVTermErr_msg_user_cmd_param_error, "the offer lacks a field"
                ) from None
            try:
                path = await self._download(url, size, md5, version)
                if self.install is not None:
                    result = self.install(path, version)
                    if inspect.isawaitable(result):
                        await result
            except IVError as exc:
                self.last_error = exc
                await self._progress(0)
                raise
            self.last_error = None
            self.upgrades += 1
            self.device.version = dataclasses.replace(self.device.version, swVer=version)
            log.info("device %s: upgraded to %s", self.device.tid, version)
            await self._progress(100)
            await self.device.report(
                "ProConst._versionInfo", dataclasses.asdict(self.device.version)
            )
            return {"version": version}

    async def _download(self, url: str, size: int, md5: str, version: str) -> Path:
        """The verified file of ``version``. It downloads into ``<name>.part``: a download
        that breaks off keeps what it got, and the next upgrade to the same version asks
        for the rest (HTTP Range; from the start when the server ignores it). Parts of
        other versions are removed; a part that fails its check is too."""
        folder = self.folder or Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"firmware-{self.device.tid}-{version}.bin"
        part = path.with_suffix(".part")
        digest, got = await asyncio.to_thread(_resume_point, folder, part, self.device.tid, size)
        await self._progress(min(99, got * 100 // size) if size else 0)
        if got < size:
            digest, got = await self._fetch(url, part, digest, got, size)
        if got != size or digest.hexdigest() != md5:
            part.unlink(missing_ok=True)
            what = "size" if got != size else "MD5"
            raise IVError.of(
                ErrorCode.IVTermErr_msg_gdm_handle_fail,
                f"firmware {version} is corrupt: its {what} does not match; not installed",
            )
        part.replace(path)
        return path

    async def _fetch(
        self, url: str, part: Path, digest: Any, got: int, size: int
    ) -> tuple[Any, int]:
        """Append the rest of the file from byte ``got`` to ``part``; (digest, bytes)."""
        headers = {"Range": f"bytes={got}-"} if got else {}
        reported = got * 100 // size
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout) as http,
                http.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code == 200 and got:
                    log.info("device %s: the firmware server cannot resume; from the start",
                             self.device.tid)  # fmt: skip
                    digest, got = hashlib.md5(), 0  # noqa: S324 - the platform's file check
                elif response.status_code not in (200, 206):
                    raise IVError.of(
                        ErrorCode.IVTermErr_msg_gdm_handle_fail,
                        f"firmware download answered HTTP {response.status_code}",
                    )
                with part.open("ab" if got else "wb") as out:
                    async for chunk in response.aiter_bytes():
                        got += len(chunk)
                        if got > size:
                            break
                        digest.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
                        percent = min(99, got * 100 // size)
                        if percent >= reported + 10:
                            reported = percent
                            await self._progress(percent)
        except httpx.HTTPError as exc:
            raise IVError.of(
                ErrorCode.IVTermErr_msg_gdm_handle_fail,
                f"firmware download failed at byte {got} of {size} (the next upgrade "
                f"resumes there): {exc}",
            ) from None
        return digest, got

    async def _progress(self, percent: int) -> None:
        try:
            await self.device.report(PROGRESS, percent)
        except IVError as exc:  # offline: the latest value is sent after login
            log.info("device %s: progress not sent: %s", self.device.tid, exc)


def _resume_point(folder: Path, part: Path, tid: str, size: int) -> tuple[Any, int]:
    """Remove the parts of other versions; the MD5 state and length of ``part`` (a part
    longer than ``size`` is removed). Blocking: run it in a thread."""
    for other in folder.glob(f"firmware-{tid}-*.part"):
        if other != part:
            other.unlink(missing_ok=True)
    digest = hashlib.md5()  # noqa: S324 - the platform's file check, not security
    try:
        got = part.stat().st_size
    except FileNotFoundError:
        return digest, 0
    if got > size:
        part.unlink()
        return digest, 0
    with part.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest, got
