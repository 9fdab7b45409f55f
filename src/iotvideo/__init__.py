"""iotvideo: a self-hostable IoT camera video platform.

Three programs share one protocol: the cloud (:mod:`iotvideo.cloud`), the device SDK
(:mod:`iotvideo.device`) and the app SDK (:mod:`iotvideo.app`).
"""

import logging
from importlib.metadata import PackageNotFoundError, version

from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["ErrorCode", "IVError", "__version__"]

try:
    #: The version of the installed distribution (one string, in pyproject.toml).
    __version__ = version("iotvideo")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

logging.getLogger("iotvideo").addHandler(logging.NullHandler())
