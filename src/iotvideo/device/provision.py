"""Provisioning on the device: from the box to online, holding the app's bind token.

Three ways, as the seed describes them:

- **QR** (:meth:`Provisioner.by_qr`): the camera reads the code the app shows (an image
  file here, or frames of its own video), joins the network and logs in with the token.
- **AP** (:meth:`Provisioner.by_ap`): the camera serves its local endpoint (on its hotspot)
  and announces itself with DNS-SD; the app sends sealed Wi-Fi settings and the token.
- **LAN** (:meth:`Provisioner.by_lan`): a wired camera is online already; it announces
  itself on the LAN and the app sends it just the token, which it presents to the cloud.

Joining a network is the integrator's job: pass ``apply_wifi`` (sync or async), called with
the :class:`WifiConfig` before the device logs in. The default only logs the SSID.

The DNS-SD service is ``_iotvideo._tcp.local.``, instance name ``<Tid>``, with TXT keys
``v`` (1), ``tid``, ``pid`` (product), ``bindable`` (1 while the device has no owner) and
``mode`` (``ap`` or ``lan``); ``avahi-browse -rt _iotvideo._tcp`` lists such devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
import zxingcpp
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from iotvideo.device.client import DeviceClient
from iotvideo.protocol.certificate import DeviceCertificate
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.provision import (
    HELLO_PATH,
    SERVICE_TYPE,
    WIFI_PATH,
    Hello,
    Sealed,
    WifiConfig,
    make_hello,
    parse_qr_payload,
    unseal,
)

__all__ = ["ApplyWifi", "Frame", "LocalEndpoint", "Provisioner", "decode_qr", "log_wifi"]

log = logging.getLogger("iotvideo.device.provision")

ApplyWifi = Callable[[WifiConfig], Awaitable[None] | None]
#: A picture to scan: a file, a PIL image or an array of pixels (H×W or H×W×3).
Frame = str | Path | Image.Image | np.ndarray
#: Hellos (key agreements) a device keeps open at once, and how long each lives.
MAX_OPEN_HELLOS = 16
HELLO_TTL = 120.0


def log_wifi(config: WifiConfig) -> None:
    """The default ``apply_wifi``: say what would be joined (never the password)."""
    if config.ssid:
        log.info("would join Wi-Fi %r now; pass apply_wifi to really do it", config.ssid)


def decode_qr(image: Frame) -> WifiConfig:
    """Find an iotvideo configuration QR code in an image; ValueError if there is none.

    Blocking (image decoding): call it off the event loop.
    """
    if isinstance(image, str | Path):
        with Image.open(image) as opened:
            picture: Any = opened.convert("L")
    else:
        picture = image
    problems = []
    qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    for result in zxingcpp.read_barcodes(picture, formats=qr_only):
        try:
            return parse_qr_payload(result.text)
        except ValueError as exc:
            problems.append(str(exc))
    raise ValueError(problems[0] if problems else "no QR code found in the image")


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class LocalEndpoint:
    """The device's provisioning endpoint on the LAN (or its hotspot), announced by DNS-SD.

    ``on_config`` gets every configuration that was sealed for this device; the endpoint
    refuses new ones (21102) while ``bindable`` is false. ``GET`` :data:`HELLO_PATH` gives
    a signed hello with a fresh X25519 key (good for one configuration, 2 minutes); ``POST``
    :data:`WIFI_PATH` takes the settings sealed for it.
    """

    def __init__(
        self,
        certificate: DeviceCertificate,
        *,
        on_config: Callable[[WifiConfig], Coroutine[Any, Any, None]],
        mode: str = "ap",
        host: str = "0.0.0.0",  # noqa: S104 - a device's endpoint listens on its networks
        port: int = 0,
        announce: list[str] | None = None,
        bindable: bool = True,
        discoverable: bool = True,
    ) -> None:
        self.certificate = certificate
        #: Announce with DNS-SD (off when the app knows the address, e.g. a fixed hotspot
        #: gateway, or where multicast is not wanted).
        self.discoverable = discoverable
        self.on_config = on_config
        self.mode = mode
        self.host = host
        self.port = port
        self.announce = announce
        self.bindable = bindable
        self._hellos: OrderedDict[str, tuple[Any, Hello, float]] = OrderedDict()
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen and announce; the endpoint's port is :attr:`port` afterwards."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        app = Starlette(
            routes=[Route(HELLO_PATH, self._hello), Route(WIFI_PATH, self._wifi, methods=["POST"])]
        )
        config = uvicorn.Config(app, log_config=None, lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        # _serve: serve() would also take over SIGINT/SIGTERM, which belong to the program
        # embedding this endpoint.
        self._serving = asyncio.create_task(self._server._serve(sockets=[sock]))
        if self.discoverable:
            await self._announce()
        log.info("provisioning endpoint on %s:%d (%s mode)", self.host, self.port, self.mode)

    async def stop(self) -> None:
        if self._zeroconf is not None:
            with contextlib.suppress(Exception):
                if self._info is not None:
                    await self._zeroconf.async_unregister_service(self._info)
                await self._zeroconf.async_close()
            self._zeroconf = None
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
            self._server = None

    async def set_bindable(self, bindable: bool) -> None:
        """Say so in the announcement (and refuse or accept new configurations)."""
        self.bindable = bindable
        if self._zeroconf is not None and self._info is not None:
            self._info = self._service_info()
            await self._zeroconf.async_update_service(self._info)

    # DNS-SD

    def _addresses(self) -> list[str]:
        if self.announce:
            return self.announce
        if self.host not in ("0.0.0.0", ""):  # noqa: S104
            return [self.host]
        import ifaddr  # zeroconf's own dependency

        return [
            str(ip.ip)
            for adapter in ifaddr.get_adapters()
            for ip in adapter.ips
            if ip.is_IPv4 and not str(ip.ip).startswith("127.")
        ]

    def _service_info(self) -> AsyncServiceInfo:
        tid = self.certificate.tid
        properties = {
            "v": "1",
            "tid": tid,
            "pid": self.certificate.product_id,
            "bindable": "1" if self.bindable else "0",
            "mode": self.mode,
        }
        return AsyncServiceInfo(
            SERVICE_TYPE,
            f"{tid}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(a) for a in self._addresses()],
            port=self.port,
            properties=properties,
            server=f"iv-{tid.lower()}.local.",
        )

    async def _announce(self) -> None:
        self._zeroconf = AsyncZeroconf(interfaces=self._addresses(), ip_version=IPVersion.V4Only)
        self._info = self._service_info()
        await self._zeroconf.async_register_service(self._info)

    # HTTP

    async def _hello(self, _request: Request) -> JSONResponse:
        now = time.monotonic()
        for nonce, (_key, _hello, expires) in list(self._hellos.items()):
            if expires < now:
                del self._hellos[nonce]
        key, hello = make_hello(
            self.certificate.private_key, self.certificate.tid, self.certificate.product_id
        )
        self._hellos[hello.nonce] = (key, hello, now + HELLO_TTL)
        while len(self._hellos) > MAX_OPEN_HELLOS:
            self._hellos.popitem(last=False)
        return JSONResponse(hello.to_json())

    async def _wifi(self, request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > 8192:
            return _refuse(413, ErrorCode.IVMessageError_ExceedsMaxLength, "too large")
        try:
            sealed = Sealed.from_json(json.loads(body))
        except ValueError as exc:
            return _refuse(400, ErrorCode.IVTermErr_msg_user_cmd_param_error, str(exc))
        opened = self._hellos.pop(sealed.nonce, None)  # each hello opens one configuration
        if opened is None:
            return _refuse(
                403,
                ErrorCode.IVTermErr_msg_lan_calling_not_allow,
                "unknown or used hello; ask again",
            )
        key, hello, _ = opened
        try:
            config = unseal(key, hello, sealed)
        except ValueError as exc:
            return _refuse(403, ErrorCode.IVTermErr_msg_lan_calling_not_allow, str(exc))
        if not self.bindable:
            return _refuse(
                409, ErrorCode.IVNetCfgErr_DevStatusErr, "the device already has an owner"
            )
        log.info("received a configuration (SSID %r)", config.ssid)
        task = asyncio.create_task(self.on_config(config))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return JSONResponse({"code": 0})


def _refuse(status: int, code: ErrorCode, msg: str) -> JSONResponse:
    return JSONResponse({"code": int(code), "msg": msg}, status_code=status)


class Provisioner:
    """Runs one of the three flows and returns the device's logged-in client."""

    def __init__(
        self,
        certificate: str | DeviceCertificate,
        cloud: str | list[str],
        *,
        apply_wifi: ApplyWifi = log_wifi,
        host: str = "0.0.0.0",  # noqa: S104
        port: int = 0,
        announce: list[str] | None = None,
        discoverable: bool = True,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.certificate = (
            certificate
            if isinstance(certificate, DeviceCertificate)
            else DeviceCertificate.parse(certificate)
        )
        self.cloud = cloud
        self.apply_wifi = apply_wifi
        self.host, self.port, self.announce = host, port, announce
        self.discoverable = discoverable
        self._listening = asyncio.Event()
        self.client_options = client_options or {}
        self.endpoint: LocalEndpoint | None = None
        #: When the last configuration arrived (time.time()), for measurements.
        self.received_at = 0.0

    def _endpoint(
        self,
        on_config: Callable[[WifiConfig], Coroutine[Any, Any, None]],
        mode: str,
        *,
        bindable: bool,
    ) -> LocalEndpoint:
        return LocalEndpoint(
            self.certificate,
            on_config=on_config,
            mode=mode,
            host=self.host,
            port=self.port,
            announce=self.announce,
            bindable=bindable,
            discoverable=self.discoverable,
        )

    def _client(self, bind_token: str | None = None) -> DeviceClient:
        return DeviceClient(
            self.certificate, self.cloud, bind_token=bind_token, **self.client_options
        )

    async def _join(self, config: WifiConfig) -> DeviceClient:
        await _call(self.apply_wifi, config)
        client = self._client(config.bind_token)
        await client.start()
        return client

    async def by_qr(self, image: Frame) -> DeviceClient:
        """Read the QR code, join the network, log in with the token."""
        try:
            config = await asyncio.to_thread(decode_qr, image)
            self.received_at = time.time()
        except ValueError as exc:
            raise IVError.of(
                ErrorCode.IVNetCfgErr_DevStatusErr, f"cannot provision from this image: {exc}"
            ) from None
        return await self._join(config)

    async def by_qr_frames(
        self, frames: AsyncIterable[Frame] | Iterable[Frame], *, timeout: float | None = None
    ) -> DeviceClient:
        """Scan frames of the camera's own video until one shows the app's code, then join.

        Frames without a code, or with someone else's, are passed over (a camera sees
        all sorts); a frame is decoded off the event loop. ``timeout`` (seconds) bounds
        the whole scan: ``IVNetCfgErr_DevStatusErr`` when it runs out, as when the frames
        end without a code.
        """
        config: WifiConfig | None = None
        scanned = 0
        last_problem = "no frames"

        async def scan() -> WifiConfig | None:
            nonlocal scanned, last_problem
            async for frame in _aiter(frames):
                scanned += 1
                try:
                    return await asyncio.to_thread(decode_qr, frame)
                except ValueError as exc:
                    last_problem = str(exc)
            return None

        try:
            async with asyncio.timeout(timeout):
                config = await scan()
        except TimeoutError:
            last_problem = f"no code within {timeout:g} s"
        if config is None:
            raise IVError.of(
                ErrorCode.IVNetCfgErr_DevStatusErr,
                f"no configuration QR code in {scanned} frames ({last_problem})",
            )
        self.received_at = time.time()
        return await self._join(config)

    async def by_ap(self) -> DeviceClient:
        """Serve the local endpoint until an app sends a configuration; then join and log in."""
        arrived: asyncio.Future[WifiConfig] = asyncio.get_running_loop().create_future()

        async def on_config(config: WifiConfig) -> None:
            if not arrived.done():
                self.received_at = time.time()
                arrived.set_result(config)

        self.endpoint = self._endpoint(on_config, "ap", bindable=True)
        await self.endpoint.start()
        self._listening.set()
        try:
            config = await arrived
        except BaseException:
            self._listening.clear()
            await self.endpoint.stop()
            raise
        self._listening.clear()
        # The hotspot goes down while the device joins the network (stopping the server
        # takes up to its poll tick; no reason to make the login wait for it).
        stopping = asyncio.create_task(self.endpoint.stop())
        try:
            return await self._join(config)
        finally:
            await stopping

    async def by_lan(self) -> DeviceClient:
        """Log in (the cable is the network), announce on the LAN, present tokens as they come.

        The endpoint stays up (call :meth:`stop`); it follows the device's bindable state.
        """
        client = self._client()
        await client.start()

        async def on_config(config: WifiConfig) -> None:
            self.received_at = time.time()
            if config.ssid:
                await _call(self.apply_wifi, config)
            try:
                await client.present_bind_token(config.bind_token)
            except IVError as exc:
                log.warning("the cloud did not take the bind token: %s", exc)

        self.endpoint = self._endpoint(on_config, "lan", bindable=client.bindable)
        await self.endpoint.start()
        self._listening.set()
        endpoint = self.endpoint
        client.on_bindable = lambda bindable: _keep(
            asyncio.create_task(endpoint.set_bindable(bindable))
        )
        return client

    async def listening(self) -> LocalEndpoint:
        """Wait until the local endpoint (AP and LAN modes) takes configurations."""
        await self._listening.wait()
        assert self.endpoint is not None
        return self.endpoint

    async def stop(self) -> None:
        self._listening.clear()
        if self.endpoint is not None:
            await self.endpoint.stop()


_background: set[asyncio.Task[None]] = set()


async def _aiter(frames: AsyncIterable[Frame] | Iterable[Frame]) -> AsyncIterator[Frame]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame
            await asyncio.sleep(0)  # let the loop breathe between frames


def _keep(task: asyncio.Task[None]) -> None:
    _background.add(task)
    task.add_done_callback(_background.discard)
