"""The cloud: vendor API, link, thing model, VAS and OTA behind one ASGI app.

Submodules are imported on first use so that ``iotvideo --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iotvideo.cloud.app import create_app
    from iotvideo.cloud.settings import CloudSettings

__all__ = ["CloudSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from iotvideo.cloud.app import create_app

        return create_app
    if name == "CloudSettings":
        from iotvideo.cloud.settings import CloudSettings

        return CloudSettings
    raise AttributeError(name)
