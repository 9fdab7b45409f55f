"""The cloud: vendor API, link, thing model, VAS and OTA behind one ASGI app."""

from iotvideo.cloud.app import create_app
from iotvideo.cloud.settings import CloudSettings

__all__ = ["CloudSettings", "create_app"]
