"""The error codes of the app SDK guide (the seed) and the exception tree that carries them.

Every failure that crosses a public API of iotvideo is an :class:`IVError` carrying one of
the seed's numeric codes and its name. The tree follows the seed's tables::

    IVError
    ├── ServerError      8000-8999   (IVASrvErr_*, IVCSrvErr_*: the cloud refused)
    ├── TermError        20000-20999 (IVTermErr_*: peer-to-peer and device-side errors)
    └── SDKError         21000-21999 (errors raised by the SDK itself)
        ├── MessageError     21000-21019 (IVMessageError_*)
        ├── ConnError        21020-21029 (IVConnError_*)
        ├── PlayerError      21030-21059 (IVPlayerError_*)
        ├── DownloadError    21060-21079 (IVDownloadError_*)
        ├── AckError         21080-21099 (IVAckErr_*)
        └── NetCfgError      21100-21199 (IVNetCfgErr_*)

Raise with :meth:`IVError.of`, which picks the family from the code::

    raise IVError.of(ErrorCode.IVMessageError_timeout, "no reply from the device in 5 s")

and catch by family or by code::

    except MessageError as e:
        if e.code is ErrorCode.IVMessageError_timeout: ...

Member names of :class:`ErrorCode` are the seed's names, spelled as the seed spells them
(``IVASrvErr_dst_notexsit`` included), so a search in the guide finds them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

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
    "describe",
]


class ErrorCode(IntEnum):
    """Every numeric code of the seed's error tables."""

    # Server (ASrv: 8000-8499, CSrv: 8500-8699)
    IVASrvErr_dst_offline = 8000
    IVASrvErr_dst_notexsit = 8002
    IVASrvErr_dst_error_relation = 8003
    IVASrvErr_binderror_dev_usr_has_bind = 8022
    IVASrvErr_binderror_dev_has_bind_other = 8023
    IVASrvErr_binderror_customer_diffrent = 8024
    # The seed names only the number (ProUser names starting with "_" are reserved).
    IVCSrvErr_prouser_name_reserved = 8605

    # Peer to peer, part 1 (20000-20150)
    IVTermErr_msg_send_peer_timeout = 20001
    IVTermErr_msg_calling_dev_hangup = 20002
    IVTermErr_msg_calling_send_timeout = 20003
    IVTermErr_msg_calling_no_srv_addr = 20004
    IVTermErr_msg_calling_handshake_timeout = 20005
    IVTermErr_msg_calling_token_error = 20006
    IVTermErr_msg_calling_all_chn_busy = 20007
    IVTermErr_msg_calling_timeout_disconnect = 20008
    IVTermErr_msg_calling_no_find_dst_id = 20009
    IVTermErr_msg_calling_check_token_error = 20010
    IVTermErr_msg_calling_dev_is_disable = 20011
    IVTermErr_msg_calling_duplicate_call = 20012
    IVTermErr_msg_calling_caller_hungup = 20013
    IVTermErr_msg_calling_relation_modify = 20014
    IVTermErr_msg_access_lib_not_init = 20015
    IVTermErr_msg_lan_calling_not_allow = 20016
    IVTermErr_msg_calling_no_relation = 20017
    IVTermErr_msg_calling_no_online = 20018
    IVTermErr_msg_gdm_handle_processing = 20100
    IVTermErr_msg_gdm_handle_leaf_path_error = 20101
    IVTermErr_msg_gdm_handle_parse_json_fail = 20102
    IVTermErr_msg_gdm_handle_fail = 20103
    IVTermErr_msg_gdm_handle_no_cb_registered = 20104
    IVTermErr_msg_gdm_handle_buildin_prowritable_error = 20105
    IVTermErr_msg_saas_hungup_code_invalid = 20135
    IVTermErr_msg_wait_option_timeout_hangup = 20136
    IVTermErr_msg_find_record_file_fail = 20137
    IVTermErr_msg_read_record_file_fail = 20138
    IVTermErr_msg_user_cmd_internal_error = 20140
    IVTermErr_msg_user_cmd_type_error = 20141
    IVTermErr_msg_user_cmd_version_error = 20142
    IVTermErr_msg_user_cmd_param_error = 20143
    IVTermErr_msg_user_cmd_option_mismatch = 20145
    IVTermErr_msg_user_cmd_saas_err_invalid = 20146

    # Message manager
    IVMessageError_duplicate = 21000
    IVMessageError_sendFailed = 21001
    IVMessageError_timeout = 21002
    IVMessageError_GetGdmDataErr = 21003
    IVMessageError_RcvGdmDataErr = 21004
    IVMessageError_SendPassSrvErr = 21005
    IVMessageError_SendPassDevErr = 21006
    IVMessageError_NotFoundCallback = 21007
    IVMessageError_ExceedsMaxLength = 21008

    # Connections
    IVConnError_ExceedsMaxNumber = 21020
    IVConnError_Duplicate = 21021
    IVConnError_ConnectFailed = 21022
    IVConnError_Disconnected = 21023
    IVConnError_ExceedsMaxLength = 21024
    IVConnError_NotAvailableNow = 21025
    IVConnError_SendDataFailed = 21026

    # Players
    IVPlayerError_NoRespondsToSelector = 21030
    IVPlayerError_InvalidParameter = 21031
    IVPlayerError_PlaybackListEmpty = 21032
    IVPlayerError_PlaybackDataErr = 21033
    IVPlayerError_RecorderIsRunning = 21034
    IVPlayerError_VideoResolutionChanged = 21035
    IVPlayerError_EncoderNotAvailableNow = 21036
    IVPlayerError_PlaybackListVerErr = 21037
    IVPlayerError_DeviceOperationFailed = 21038
    IVPlayerError_RecorderNotAvailableNow = 21039
    IVPlayerError_OperationNotAllowedNow = 21040
    IVPlayerError_AVInformationAbnormal = 21041

    # Downloads
    IVDownloadError_DownloaderBusy = 21060
    IVDownloadError_FileUnavailable = 21061
    IVDownloadError_IncorrectOffset = 21062
    IVDownloadError_FileOpenFailed = 21063
    IVDownloadError_FileNotFound = 21064
    IVDownloadError_ProcessExited = 21065
    IVDownloadError_DataSizeAbnormal = 21070
    IVDownloadError_DevUnknownError = 21071
    IVDownloadError_DevNoResponse = 21072

    # Device ACKs
    IVAckErr_NotSupport = 21080
    IVAckErr_ParameterErr = 21081
    IVAckErr_UnknownErr = 21082
    IVAckErr_NoResponse = 21083
    IVAckErr_DeviceBusy = 21084

    # Network configuration
    IVNetCfgErr_GetTokenErr = 21100
    IVNetCfgErr_TokenExpired = 21101
    IVNetCfgErr_DevStatusErr = 21102
    IVNetCfgErr_ServerErr = 21103


_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.IVASrvErr_dst_offline: "the target is offline",
    ErrorCode.IVASrvErr_dst_notexsit: "the target does not exist",
    ErrorCode.IVASrvErr_dst_error_relation: "no valid relation with the target",
    ErrorCode.IVASrvErr_binderror_dev_usr_has_bind: "the device is already bound to this user",
    ErrorCode.IVASrvErr_binderror_dev_has_bind_other: "the device is already bound to another user",
    ErrorCode.IVASrvErr_binderror_customer_diffrent: (
        "the device and the user belong to different vendors"
    ),
    ErrorCode.IVCSrvErr_prouser_name_reserved: (
        "ProUser names starting with '_' are reserved for built-ins"
    ),
    ErrorCode.IVTermErr_msg_send_peer_timeout: "sending the message to the peer timed out",
    ErrorCode.IVTermErr_msg_calling_dev_hangup: "the device hung up; the app may reconnect",
    ErrorCode.IVTermErr_msg_calling_send_timeout: "sending the call timed out",
    ErrorCode.IVTermErr_msg_calling_no_srv_addr: (
        "the server assigned no relay address; the app may reconnect"
    ),
    ErrorCode.IVTermErr_msg_calling_handshake_timeout: "handshake timed out; the app may reconnect",
    ErrorCode.IVTermErr_msg_calling_token_error: "the device refused the token",
    ErrorCode.IVTermErr_msg_calling_all_chn_busy: "all viewer channels of the device are busy",
    ErrorCode.IVTermErr_msg_calling_timeout_disconnect: "disconnected on timeout; may reconnect",
    ErrorCode.IVTermErr_msg_calling_no_find_dst_id: "the destination id was not found",
    ErrorCode.IVTermErr_msg_calling_check_token_error: "checking the token failed",
    ErrorCode.IVTermErr_msg_calling_dev_is_disable: "the device is disabled",
    ErrorCode.IVTermErr_msg_calling_duplicate_call: "duplicate call",
    ErrorCode.IVTermErr_msg_calling_caller_hungup: "the caller hung up while connecting",
    ErrorCode.IVTermErr_msg_calling_relation_modify: "disconnected because the relation changed",
    ErrorCode.IVTermErr_msg_access_lib_not_init: "the access library is not initialised",
    ErrorCode.IVTermErr_msg_lan_calling_not_allow: "LAN call refused: wrong or unchecked password",
    ErrorCode.IVTermErr_msg_calling_no_relation: "the app has no relation with the device",
    ErrorCode.IVTermErr_msg_calling_no_online: "the app is not online yet; try again later",
    ErrorCode.IVTermErr_msg_gdm_handle_processing: "the device is still processing",
    ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error: "invalid thing-model leaf path",
    ErrorCode.IVTermErr_msg_gdm_handle_parse_json_fail: "the JSON could not be parsed",
    ErrorCode.IVTermErr_msg_gdm_handle_fail: "the device failed to handle the action",
    ErrorCode.IVTermErr_msg_gdm_handle_no_cb_registered: (
        "the device registered no handler for this action"
    ),
    ErrorCode.IVTermErr_msg_gdm_handle_buildin_prowritable_error: (
        "built-in writable properties cannot be changed over the LAN"
    ),
    ErrorCode.IVTermErr_msg_saas_hungup_code_invalid: "the device hung up with an invalid code",
    ErrorCode.IVTermErr_msg_wait_option_timeout_hangup: (
        "the device hung up after waiting too long for the next download step"
    ),
    ErrorCode.IVTermErr_msg_find_record_file_fail: "the recording file was not found",
    ErrorCode.IVTermErr_msg_read_record_file_fail: "the recording file could not be read",
    ErrorCode.IVTermErr_msg_user_cmd_internal_error: "internal error on the device",
    ErrorCode.IVTermErr_msg_user_cmd_type_error: "unsupported user command type",
    ErrorCode.IVTermErr_msg_user_cmd_version_error: "unsupported user command version",
    ErrorCode.IVTermErr_msg_user_cmd_param_error: "user command parameter out of range",
    ErrorCode.IVTermErr_msg_user_cmd_option_mismatch: (
        "the operation does not match the current state"
    ),
    ErrorCode.IVTermErr_msg_user_cmd_saas_err_invalid: "the device returned an invalid error code",
    ErrorCode.IVMessageError_duplicate: "duplicate message, or the message is being sent",
    ErrorCode.IVMessageError_sendFailed: "sending the message failed",
    ErrorCode.IVMessageError_timeout: "no reply in time",
    ErrorCode.IVMessageError_GetGdmDataErr: "reading the thing model failed",
    ErrorCode.IVMessageError_RcvGdmDataErr: "receiving the thing model failed",
    ErrorCode.IVMessageError_SendPassSrvErr: "passing data to the server failed",
    ErrorCode.IVMessageError_SendPassDevErr: "passing data to the device failed",
    ErrorCode.IVMessageError_NotFoundCallback: "no callback found, or it timed out",
    ErrorCode.IVMessageError_ExceedsMaxLength: "the message exceeds MAX_DATA_SIZE",
    ErrorCode.IVConnError_ExceedsMaxNumber: "too many connections (MAX_CONNECTION_NUM)",
    ErrorCode.IVConnError_Duplicate: "the connection already exists",
    ErrorCode.IVConnError_ConnectFailed: "connecting failed",
    ErrorCode.IVConnError_Disconnected: "not connected",
    ErrorCode.IVConnError_ExceedsMaxLength: "the data exceeds MAX_PKG_BYTES",
    ErrorCode.IVConnError_NotAvailableNow: "not available now, or the SDK is offline",
    ErrorCode.IVConnError_SendDataFailed: "sending user data failed",
    ErrorCode.IVPlayerError_NoRespondsToSelector: "a module does not implement its protocol",
    ErrorCode.IVPlayerError_InvalidParameter: "invalid parameter",
    ErrorCode.IVPlayerError_PlaybackListEmpty: "the recording list is empty",
    ErrorCode.IVPlayerError_PlaybackDataErr: "the recording list is malformed",
    ErrorCode.IVPlayerError_RecorderIsRunning: "already recording",
    ErrorCode.IVPlayerError_VideoResolutionChanged: "the video resolution changed",
    ErrorCode.IVPlayerError_EncoderNotAvailableNow: "the encoder is not available now",
    ErrorCode.IVPlayerError_PlaybackListVerErr: "unsupported recording list version",
    ErrorCode.IVPlayerError_DeviceOperationFailed: "the device failed the operation",
    ErrorCode.IVPlayerError_RecorderNotAvailableNow: "the recorder is not available now",
    ErrorCode.IVPlayerError_OperationNotAllowedNow: "not allowed in the current state",
    ErrorCode.IVPlayerError_AVInformationAbnormal: "abnormal audio/video parameters",
    ErrorCode.IVDownloadError_DownloaderBusy: "the downloader is busy; pause the current file",
    ErrorCode.IVDownloadError_FileUnavailable: "the file could not be read",
    ErrorCode.IVDownloadError_IncorrectOffset: "the resume offset is larger than the file",
    ErrorCode.IVDownloadError_FileOpenFailed: "the file could not be opened",
    ErrorCode.IVDownloadError_FileNotFound: "the file was not found",
    ErrorCode.IVDownloadError_ProcessExited: "the device's transfer stopped",
    ErrorCode.IVDownloadError_DataSizeAbnormal: "received size differs from the file size",
    ErrorCode.IVDownloadError_DevUnknownError: "unknown error on the device",
    ErrorCode.IVDownloadError_DevNoResponse: "the device does not respond",
    ErrorCode.IVAckErr_NotSupport: "the device does not support this command",
    ErrorCode.IVAckErr_ParameterErr: "the device found a parameter error",
    ErrorCode.IVAckErr_UnknownErr: "unknown error on the device",
    ErrorCode.IVAckErr_NoResponse: "the device does not respond",
    ErrorCode.IVAckErr_DeviceBusy: "the device is busy with another command",
    ErrorCode.IVNetCfgErr_GetTokenErr: "getting the bind token failed",
    ErrorCode.IVNetCfgErr_TokenExpired: "the bind token has expired",
    ErrorCode.IVNetCfgErr_DevStatusErr: "the device is not in a bindable state",
    ErrorCode.IVNetCfgErr_ServerErr: "the server reported an error",
}


def describe(code: int) -> str:
    """The seed's meaning of a code, in English, or ``"unknown error"``."""
    try:
        return _DESCRIPTIONS[ErrorCode(code)]
    except ValueError:
        return "unknown error"


class IVError(Exception):
    """Root of every iotvideo error: a seed code (:attr:`code`) and a message."""

    #: The range of codes this family holds, inclusive; subclasses narrow it.
    codes: ClassVar[range] = range(1 << 31)

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code: ErrorCode | int = _as_code(code)
        self.message = message or describe(code)
        super().__init__(f"{self.code_name} ({int(self.code)}): {self.message}")

    @property
    def code_name(self) -> str:
        """The seed's name of the code, e.g. ``IVMessageError_timeout``."""
        return self.code.name if isinstance(self.code, ErrorCode) else f"code_{int(self.code)}"

    @classmethod
    def of(cls, code: int, message: str | None = None) -> IVError:
        """An error of the most specific family whose range holds ``code``."""
        for family in _FAMILIES:
            if int(code) in family.codes:
                return family(code, message)
        return IVError(code, message)

    def to_json(self) -> dict[str, object]:
        """``{"code": 21002, "name": "IVMessageError_timeout", "msg": "..."}``."""
        return {"code": int(self.code), "name": self.code_name, "msg": self.message}


def _as_code(code: int) -> ErrorCode | int:
    try:
        return ErrorCode(code)
    except ValueError:
        return int(code)


class ServerError(IVError):
    """The cloud refused (8000-8999)."""

    codes = range(8000, 10000)


class TermError(IVError):
    """Peer-to-peer and device-side errors (20000-20999)."""

    codes = range(20000, 21000)


class SDKError(IVError):
    """Errors raised by the SDK itself (21000-21999)."""

    codes = range(21000, 22000)


class MessageError(SDKError):
    """Message manager errors (IVMessageError_*)."""

    codes = range(21000, 21020)


class ConnError(SDKError):
    """Connection errors (IVConnError_*)."""

    codes = range(21020, 21030)


class PlayerError(SDKError):
    """Player errors (IVPlayerError_*)."""

    codes = range(21030, 21060)


class DownloadError(SDKError):
    """File download errors (IVDownloadError_*)."""

    codes = range(21060, 21080)


class AckError(SDKError):
    """Errors the device acknowledged a command with (IVAckErr_*)."""

    codes = range(21080, 21100)


class NetCfgError(SDKError):
    """Network configuration errors (IVNetCfgErr_*)."""

    codes = range(21100, 21200)


# Most specific first: IVError.of() takes the first family whose range holds the code.
_FAMILIES: tuple[type[IVError], ...] = (
    MessageError,
    ConnError,
    PlayerError,
    DownloadError,
    AckError,
    NetCfgError,
    SDKError,
    TermError,
    ServerError,
)
