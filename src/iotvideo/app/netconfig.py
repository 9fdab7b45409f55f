"""``NetConfig``: network configuration and device subscription (the seed's 第四步 配网).

::

    token = await sdk.net_config.get_bind_token()
    sdk.net_config.observe_net_cfg_result(lambda device_id, error: ...)
    # or, asyncio style: online = sdk.net_config.next_net_cfg_result(); ...; await online

    # wired or AP: find the camera on the LAN, send it the settings (sealed for it alone)
    camera = (await sdk.net_config.lan.get_device_list())[0]
    await sdk.net_config.lan.send_wifi("home", "secret", token, camera.device_id)

    # or QR: show this image to the camera
    code = sdk.net_config.qrcode.create("home", "secret", token)
    code.save("provision.png")

    # once the observer says the device is online: bind it (vendor cloud, CreateBinding
    # with BindToken=token), then subscribe with the AccessToken that returned
    await sdk.net_config.subscribe_device(access_token, device_id)
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import segno
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from iotvideo.app.calls import Completion, call, operation
from iotvideo.protocol.errors import ErrorCode, IVError
from iotvideo.protocol.link import Push
from iotvideo.protocol.provision import (
    HELLO_PATH,
    SERVICE_TYPE,
    WIFI_PATH,
    Hello,
    WifiConfig,
    qr_payload,
    seal,
    verify_hello,
)

if TYPE_CHECKING:
    from iotvideo.app.sdk import IoTVideo

__all__ = ["LANDevice", "LanConfig", "NetCfgObserver", "NetConfig", "QRCode", "QRCodeConfig"]

log = logging.getLogger("iotvideo.app")

#: ``callback(device_id, error)``: ``error`` is None when the device came online with the
#: token and can be bound; otherwise 21101 (token expired or used) or 21102 (the device is
#: not bindable, e.g. owned by someone else).
NetCfgObserver = Callable[[str | None, IVError | None], object]


class NetConfig:
    def __init__(self, sdk: IoTVideo) -> None:
        self._sdk = sdk
        #: Subscriptions to send again after every reconnect: device_id -> token.
        self._subscriptions: dict[str, str] = {}
        self._observer: NetCfgObserver | None = None
        self._waiting: list[tuple[str | None, asyncio.Future[str]]] = []
        self.lan = LanConfig(sdk)
        self.qrcode = QRCodeConfig()
        sdk.add_login_hook(self._resubscribe)
        sdk.add_push_handler("netcfg", self._on_netcfg)

    # Bind tokens and their outcome

    def get_bind_token(
        self, *, completion: Callable[[str | None, IVError | None], object] | None = None
    ) -> asyncio.Task[str]:
        """A short-lived (10 min), single-use token tied to this user, for one device."""

        async def get() -> str:
            try:
                reply = await self._sdk.request("bindtoken.create", {})
            except IVError as exc:
                if exc.code in (ErrorCode.IVNetCfgErr_GetTokenErr,):
                    raise
                raise IVError.of(
                    ErrorCode.IVNetCfgErr_GetTokenErr, f"no bind token: {exc.message}"
                ) from None
            return str(reply["token"])

        return call(get(), completion, fallback=ErrorCode.IVNetCfgErr_ServerErr)

    def observe_net_cfg_result(self, callback: NetCfgObserver) -> None:
        """Be told when a device logs in carrying one of this user's bind tokens."""
        self._observer = callback

    def remove_observer(self) -> None:
        self._observer = None

    def next_net_cfg_result(self, device_id: str | None = None) -> asyncio.Future[str]:
        """The next net-config result (of ``device_id`` if given), asyncio style.

        Ask before the device can come online (before handing out the token): the future
        is registered at once. It resolves to the device's id when the device is online
        with the token, or raises the result's :class:`IVError` (21101, 21102). Wrap the
        await in ``asyncio.timeout``; cancelling the future forgets it. Independent of
        the observer.
        """
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting = [w for w in self._waiting if not w[1].done()]  # drop cancelled ones
        self._waiting.append((device_id, future))
        return future

    def _on_netcfg(self, push: Push) -> None:
        tid = str(push.data.get("tid", "")) or None
        code = int(push.data.get("code", ErrorCode.IVNetCfgErr_ServerErr))
        error = None if code == 0 else IVError.of(code, str(push.data.get("msg", "")) or None)
        waiting, self._waiting = self._waiting, []
        for wanted, future in waiting:
            if future.done():
                continue
            if wanted not in (None, tid):
                self._waiting.append((wanted, future))
            elif error is None:
                future.set_result(tid or "")
            else:
                future.set_exception(error)
        if self._observer is not None:
            self._observer(tid, error)

    # Subscriptions

    def subscribe_device(
        self,
        access_token: str,
        device_id: str,
        *,
        completion: Callable[[Any, IVError | None], object] | None = None,
    ) -> asyncio.Task[dict[str, Any]]:
        """Reach ``device_id`` with a token that grants it: the AccessToken CreateBinding
        returned (not the BindToken), a CreateDevToken token, or an anonymous one.

        The subscription is renewed after every reconnect. Returns ``{"tid", "role",
        "online"}``.
        """

        async def subscribe() -> dict[str, Any]:
            reply = await self._sdk.request(
                "subscribe", {"tid": device_id, "access_token": access_token}
            )
            self._subscriptions[device_id] = access_token
            return reply

        return call(subscribe(), completion, fallback=ErrorCode.IVNetCfgErr_ServerErr)

    @operation(fallback=ErrorCode.IVNetCfgErr_ServerErr)
    async def unsubscribe_device(
        self, device_id: str, *, completion: Completion | None = None
    ) -> None:
        """Stop reaching a device reached with :meth:`subscribe_device`."""
        self._subscriptions.pop(device_id, None)
        await self._sdk.request("unsubscribe", {"tid": device_id})

    async def _resubscribe(self) -> None:
        for device_id, token in list(self._subscriptions.items()):
            try:
                await self._sdk.request("subscribe", {"tid": device_id, "access_token": token})
            except IVError as exc:
                log.warning("could not renew the subscription to %s: %s", device_id, exc)
                self._subscriptions.pop(device_id, None)


@dataclass(frozen=True)
class LANDevice:
    """A device in provisioning mode found on the LAN (the seed's IVLANDevice)."""

    device_id: str
    product_id: str
    host: str
    port: int
    bindable: bool
    mode: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class LanConfig:
    """LAN discovery (DNS-SD) and sending settings to a device's local endpoint."""

    def __init__(self, sdk: IoTVideo | None = None, *, interfaces: list[str] | None = None) -> None:
        self._sdk = sdk
        #: Addresses of the interfaces to browse on (None: all of them).
        self.interfaces = interfaces
        self._found: dict[str, LANDevice] = {}

    @operation(fallback=ErrorCode.IVNetCfgErr_ServerErr)
    async def get_device_list(
        self, timeout: float = 2.0, *, completion: Completion | None = None
    ) -> list[LANDevice]:
        """The devices announcing themselves on the LAN within ``timeout`` seconds."""
        choice = self.interfaces or InterfaceChoice.All
        zc = AsyncZeroconf(interfaces=choice, ip_version=IPVersion.V4Only)
        names: set[str] = set()

        def changed(
            *, zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
        ) -> None:
            if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
                names.add(name)

        browser = AsyncServiceBrowser(zc.zeroconf, [SERVICE_TYPE], handlers=[changed])
        try:
            await asyncio.sleep(timeout)  # DNS-SD answers arrive over this window
            found = [
                d for d in await asyncio.gather(*(self._resolve(zc, n) for n in sorted(names))) if d
            ]
        finally:
            await browser.async_cancel()
            await zc.async_close()
        self._found = {d.device_id: d for d in found}
        return found

    async def _resolve(self, zc: AsyncZeroconf, name: str) -> LANDevice | None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(zc.zeroconf, 1500):
            return None
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        addresses = info.parsed_addresses()
        if props.get("v") != "1" or not props.get("tid") or not addresses or not info.port:
            return None
        return LANDevice(
            device_id=props["tid"],
            product_id=props.get("pid", ""),
            host=addresses[0],
            port=info.port,
            bindable=props.get("bindable") == "1",
            mode=props.get("mode", ""),
        )

    @operation(fallback=ErrorCode.IVNetCfgErr_ServerErr)
    async def send_wifi(
        self,
        ssid: str,
        password: str,
        token: str,
        device_id: str,
        *,
        device: LANDevice | None = None,
        timeout: float = 10.0,
        completion: Completion | None = None,
    ) -> None:
        """Send Wi-Fi settings and the bind token to a device on the LAN, sealed for it.

        The device's identity is checked against its key in the cloud first (20016 if it
        does not match). An empty ``ssid`` sends only the token (wired devices). Raises
        21102 if the device is not bindable or not on the LAN.
        """
        if self._sdk is None:
            raise IVError.of(
                ErrorCode.IVConnError_NotAvailableNow, "LanConfig needs the SDK to check devices"
            )
        try:
            config = WifiConfig(ssid, password, token)
        except ValueError as exc:
            raise IVError.of(ErrorCode.IVPlayerError_InvalidParameter, str(exc)) from None
        target = device or self._found.get(device_id)
        if target is None:
            self._found = {d.device_id: d for d in await self.get_device_list()}
            target = self._found.get(device_id)
        if target is None:
            raise IVError.of(
                ErrorCode.IVNetCfgErr_DevStatusErr, f"device {device_id} is not on this LAN"
            )
        identity = await self._sdk.request("device.identity", {"tid": device_id})
        public_key = base64.b64decode(identity["public_key"])
        async with httpx.AsyncClient(timeout=timeout) as http:
            try:
                hello = Hello.from_json((await http.get(target.url + HELLO_PATH)).json())
            except (httpx.HTTPError, ValueError) as exc:
                raise IVError.of(
                    ErrorCode.IVConnError_ConnectFailed, f"the device did not answer: {exc}"
                ) from None
            if hello.tid != device_id or not verify_hello(hello, public_key):
                raise IVError.of(
                    ErrorCode.IVTermErr_msg_lan_calling_not_allow,
                    f"the device at {target.host} is not {device_id} (identity check failed)",
                )
            try:
                answer = await http.post(target.url + WIFI_PATH, json=seal(hello, config).to_json())
                body = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise IVError.of(
                    ErrorCode.IVConnError_ConnectFailed, f"the device did not answer: {exc}"
                ) from None
        if body.get("code") != 0:
            raise IVError.of(
                int(body.get("code", ErrorCode.IVNetCfgErr_DevStatusErr)),
                str(body.get("msg", "")) or None,
            )


@dataclass(frozen=True)
class QRCode:
    """A provisioning QR code: its text and a PNG image of it."""

    payload: str
    png: bytes

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.png)


class QRCodeConfig:
    """Makes the QR code a camera reads (the seed's ``IVNetConfig.qrCode``)."""

    def create(
        self, ssid: str, password: str, token: str, *, scale: int = 8, border: int = 4
    ) -> QRCode:
        """``scale`` pixels per module, ``border`` modules of quiet zone."""
        try:
            payload = qr_payload(WifiConfig(ssid, password, token))
        except ValueError as exc:
            raise IVError.of(ErrorCode.IVPlayerError_InvalidParameter, str(exc)) from None
        code = segno.make_qr(payload, error="m")
        out = io.BytesIO()
        code.save(out, kind="png", scale=scale, border=border)
        return QRCode(payload, out.getvalue())
