"""The vendor-cloud API, compatible with Tencent Cloud API 3.0 ``iotvideo`` 2019-11-26."""

from iotvideo.cloud.vendor import (
    billing,
    bindings,
    datatypes,
    devices,
    gencode,
    ota,
    products,
    queues,
    storage,
    streams,
    things,
    tokens,
    traces,
    uploads,
    users,
)
from iotvideo.cloud.vendor.api import API_VERSION, ActionContext, VendorApi, VendorRequest
from iotvideo.cloud.vendor.errors import Code, VendorError

__all__ = [
    "API_VERSION",
    "ActionContext",
    "Code",
    "VendorApi",
    "VendorError",
    "VendorRequest",
    "register_all",
]


def register_all(api: VendorApi) -> None:
    """Register every action this cloud implements."""
    modules = (
        products,
        devices,
        users,
        tokens,
        bindings,
        things,
        storage,
        ota,
        streams,
        billing,
        uploads,
        datatypes,
        gencode,
        traces,
        queues,
    )
    for module in modules:
        module.register(api)
