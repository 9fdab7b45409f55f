"""Vendor-API errors: the string codes Tencent Cloud API 3.0 clients know.

Every refused vendor-API request ends in a :class:`VendorError`, which the router turns
into ``{"Response": {"Error": {"Code": ..., "Message": ...}, "RequestId": ...}}``.
"""

from __future__ import annotations

from enum import StrEnum

from iotvideo.protocol.errors import ErrorCode, IVError

__all__ = ["Code", "VendorError", "from_iv_error", "not_found"]


class Code(StrEnum):
    """The error codes the vendor API answers with (common and iotvideo ones)."""

    AUTH_FAILURE = "AuthFailure"
    AUTH_INVALID_AUTHORIZATION = "AuthFailure.InvalidAuthorization"
    AUTH_SECRET_ID_NOT_FOUND = "AuthFailure.SecretIdNotFound"  # noqa: S105
    AUTH_SIGNATURE_EXPIRE = "AuthFailure.SignatureExpire"
    AUTH_SIGNATURE_FAILURE = "AuthFailure.SignatureFailure"
    AUTH_TOKEN_FAILURE = "AuthFailure.TokenFailure"  # noqa: S105
    FAILED_OPERATION = "FailedOperation"
    INTERNAL_ERROR = "InternalError"
    INVALID_ACTION = "InvalidAction"
    INVALID_PARAMETER = "InvalidParameter"
    INVALID_PARAMETER_VALUE = "InvalidParameterValue"
    LIMIT_EXCEEDED = "LimitExceeded"
    MISSING_PARAMETER = "MissingParameter"
    NO_SUCH_VERSION = "NoSuchVersion"
    OPERATION_DENIED = "OperationDenied"
    REQUEST_LIMIT_EXCEEDED = "RequestLimitExceeded"
    REQUEST_SIZE_LIMIT_EXCEEDED = "RequestSizeLimitExceeded"
    RESOURCE_IN_USE = "ResourceInUse"
    RESOURCE_NOT_FOUND = "ResourceNotFound"
    RESOURCE_UNAVAILABLE = "ResourceUnavailable"
    UNAUTHORIZED_OPERATION = "UnauthorizedOperation"
    UNKNOWN_PARAMETER = "UnknownParameter"
    UNSUPPORTED_OPERATION = "UnsupportedOperation"
    UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"


class VendorError(Exception):
    """A refused vendor-API request: a Tencent-style code and a message saying what to do."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def not_found(what: str, value: str) -> VendorError:
    return VendorError(Code.RESOURCE_NOT_FOUND, f"{what} {value!r} does not exist.")


def from_iv_error(exc: IVError) -> VendorError:
    """The vendor-API error for a seed error met while serving a request."""
    code = int(exc.code)
    text = f"{exc.message} ({exc.code_name} {code})"
    if code == ErrorCode.IVASrvErr_dst_notexsit:
        return VendorError(Code.RESOURCE_NOT_FOUND, text)
    if code == ErrorCode.IVASrvErr_dst_offline:
        return VendorError(Code.RESOURCE_UNAVAILABLE, text)
    if code in _BAD_INPUT:
        return VendorError(Code.INVALID_PARAMETER_VALUE, text)
    return VendorError(Code.FAILED_OPERATION, text)


_BAD_INPUT = {
    ErrorCode.IVTermErr_msg_gdm_handle_leaf_path_error,
    ErrorCode.IVTermErr_msg_gdm_handle_parse_json_fail,
    ErrorCode.IVTermErr_msg_user_cmd_param_error,
    ErrorCode.IVCSrvErr_prouser_name_reserved,
    ErrorCode.IVMessageError_ExceedsMaxLength,
}
