"""Turns domain errors into gRPC statuses with google.rpc details."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from engine.errors import (
    AlreadyExists,
    EngineError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from engine.rpc.metadata import DETAILS_KEY

ERROR_DOMAIN = "workflow-engine"
RATE_LIMIT_POLICY = "credential"

_CODES: dict[type[EngineError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code_of(error: EngineError) -> grpc.StatusCode:
    """The gRPC code for a domain error (UNKNOWN for an unmapped subclass)."""
    for kind, code in _CODES.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def rich_status(error: EngineError) -> tuple[grpc.StatusCode, str, list[tuple[str, str | bytes]]]:
    """The code, message and trailing metadata (details, retry-after) for `error`."""
    code = status_code_of(error)
    details: list[any_pb2.Any] = []
    trailers: list[tuple[str, str | bytes]] = []
    if isinstance(error, InvalidArgument) and error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in error.violations
                    ]
                )
            )
        )
    elif isinstance(error, ResourceExhausted):
        details.append(
            _pack(
                error_details_pb2.RetryInfo(
                    retry_delay=duration_pb2.Duration(seconds=error.retry_after_seconds)
                )
            )
        )
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject="credential", description=f"at most {error.limit} requests at once"
                        )
                    ]
                )
            )
        )
        # IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), ready for HTTP.
        window = max(1, round(error.window_seconds))
        trailers.append(("retry-after", str(error.retry_after_seconds)))
        trailers.append(("ratelimit-policy", f'"{RATE_LIMIT_POLICY}";q={error.limit};w={window}'))
        trailers.append(("ratelimit", f'"{RATE_LIMIT_POLICY}";r=0;t={error.retry_after_seconds}'))
    elif isinstance(error, PermissionDenied) and error.reason:
        details.append(_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    trailers.append((DETAILS_KEY, status.SerializeToString()))
    return code, error.message, trailers


def internal_error_status(request_id: str) -> tuple[grpc.StatusCode, str, list[tuple[str, str | bytes]]]:
    """Status for an unexpected failure: no internals, only a request id to find it in the logs."""
    message = f"internal error (request id {request_id})"
    status = status_pb2.Status(code=code_pb2.INTERNAL, message=message)
    return grpc.StatusCode.INTERNAL, message, [(DETAILS_KEY, status.SerializeToString())]
