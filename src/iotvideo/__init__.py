"""iotvideo: a self-hostable IoT camera video platform.

Three programs share one protocol: the cloud (:mod:`iotvideo.cloud`), the device SDK
(:mod:`iotvideo.device`) and the app SDK (:mod:`iotvideo.app`).
"""

import logging

from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["ErrorCode", "IVError", "__version__"]
__version__ = "0.1.0"

logging.getLogger("iotvideo").addHandler(logging.NullHandler())
