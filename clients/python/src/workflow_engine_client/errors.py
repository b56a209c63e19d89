"""The exceptions a client call raises, built from the engine's gRPC status and its details.

Every failed call raises an `EngineError` (or one of its subclasses, chosen by the status
code). The engine puts `google.rpc` details in the `grpc-status-details-bin` trailer
(`BadRequest`, `RetryInfo`, `ErrorInfo`, `QuotaFailure`) and the call's request id in the
`x-request-id` trailer; both are unpacked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message as protobuf_message
from google.rpc import error_details_pb2, status_pb2

DETAILS_TRAILER = "grpc-status-details-bin"
REQUEST_ID_KEY = "x-request-id"

#: Detail types unpacked from the status; any other detail stays a packed `google.protobuf.Any`.
_DETAIL_TYPES: tuple[Any, ...] = (
    error_details_pb2.BadRequest,
    error_details_pb2.RetryInfo,
    error_details_pb2.ErrorInfo,
    error_details_pb2.QuotaFailure,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.ResourceInfo,
    error_details_pb2.DebugInfo,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
    error_details_pb2.RequestInfo,
)


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, named as in the JSON API (`agencyId`, `dashboardUrl`, ...)."""

    field: str
    description: str


class EngineError(Exception):
    """A call to the engine failed.

    Attributes:
        code: the gRPC status code (`grpc.StatusCode`).
        message: the engine's message (never contains a secret).
        details: the `google.rpc` detail messages of the status, unpacked.
        request_id: the call's request id (`x-request-id`), to quote when asking what went wrong.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: Sequence[protobuf_message.Message] = (),
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: list[protobuf_message.Message] = list(details)
        self.request_id = request_id

    def __str__(self) -> str:
        name = getattr(self.code, "name", str(self.code))
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{name}: {self.message}{suffix}"

    def detail(self, kind: type[Any]) -> Any | None:
        """The first detail of type `kind` (e.g. `error_details_pb2.ErrorInfo`), or None."""
        for found in self.details:
            if isinstance(found, kind):
                return found
        return None


class InvalidArgument(EngineError):
    """INVALID_ARGUMENT: the request is malformed; `field_violations` names each bad field."""

    @property
    def field_violations(self) -> list[FieldViolation]:
        violations: list[FieldViolation] = []
        for detail in self.details:
            if isinstance(detail, error_details_pb2.BadRequest):
                violations.extend(FieldViolation(v.field, v.description) for v in detail.field_violations)
        return violations


class Unauthenticated(EngineError):
    """UNAUTHENTICATED: a missing or wrong credential (the engine never says which part)."""


class PermissionDenied(EngineError):
    """PERMISSION_DENIED: a valid credential that may not do this; `reason` is the ErrorInfo reason
    (`DASHBOARD_SUSPENDED`, `AGENCY_MISMATCH`, `CREDENTIAL_NOT_ALLOWED`, ...) or ""."""

    @property
    def reason(self) -> str:
        info = self.detail(error_details_pb2.ErrorInfo)
        return str(info.reason) if info is not None else ""


class NotFound(EngineError):
    """NOT_FOUND: no such resource, or not one this caller may know about."""


class AlreadyExists(EngineError):
    """ALREADY_EXISTS: the resource to create exists already (e.g. a registered agency)."""


class FailedPrecondition(EngineError):
    """FAILED_PRECONDITION: the resource is not in a state that allows this (e.g. a stopped session)."""


class RateLimited(EngineError):
    """RESOURCE_EXHAUSTED: a rate limit was hit; `retry_after` is the server's delay in seconds
    (from RetryInfo, else the `retry-after` trailer), or None when it gave none."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: Sequence[protobuf_message.Message] = (),
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, details, request_id)
        self.retry_after = retry_after


class Unavailable(EngineError):
    """UNAVAILABLE: the engine (or a messaging provider behind it) could not be reached."""


_CLASSES: dict[str, type[EngineError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "NOT_FOUND": NotFound,
    "ALREADY_EXISTS": AlreadyExists,
    "FAILED_PRECONDITION": FailedPrecondition,
    "RESOURCE_EXHAUSTED": RateLimited,
    "UNAVAILABLE": Unavailable,
}


def _unpack_details(raw: bytes | None) -> list[protobuf_message.Message]:
    if not raw:
        return []
    try:
        status = status_pb2.Status.FromString(raw)
    except protobuf_message.DecodeError:
        return []
    unpacked: list[protobuf_message.Message] = []
    for packed in status.details:
        for kind in _DETAIL_TYPES:
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                unpacked.append(detail)
                break
        else:
            unpacked.append(packed)
    return unpacked


def _retry_after(details: Iterable[protobuf_message.Message], trailers: dict[str, Any]) -> float | None:
    for detail in details:
        if isinstance(detail, error_details_pb2.RetryInfo) and detail.HasField("retry_delay"):
            delay = detail.retry_delay
            return float(delay.seconds) + float(delay.nanos) / 1e9
    header = trailers.get("retry-after")
    if isinstance(header, str):
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    return None


def error_from_rpc(error: grpc.RpcError, sent_request_id: str | None = None) -> EngineError:
    """The EngineError (subclass) describing a failed gRPC call."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or ""
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    trailers: dict[str, Any] = dict(trailing or ())
    details = _unpack_details(trailers.get(DETAILS_TRAILER))
    request_id = trailers.get(REQUEST_ID_KEY) or sent_request_id
    kind = _CLASSES.get(getattr(code, "name", ""), EngineError)
    if kind is RateLimited:
        return RateLimited(code, message, details, request_id, _retry_after(details, trailers))
    return kind(code, message, details, request_id)
