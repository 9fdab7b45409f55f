"""Sans-IO core shared by cloud, device and app: error codes, formats and signatures.

Nothing here opens a socket, reads a clock or imports another part of iotvideo.
"""

from iotvideo.protocol.errors import (
    AckError,
    ConnError,
    DownloadError,
    ErrorCode,
    IVError,
    MessageError,
    NetCfgError,
    PlayerError,
    SDKError,
    ServerError,
    TermError,
)

__all__ = [
    "AckError",
    "ConnError",
    "DownloadError",
    "ErrorCode",
    "IVError",
    "MessageError",
    "NetCfgError",
    "PlayerError",
    "SDKError",
    "ServerError",
    "TermError",
]
