"""gRPC status → HTTP response, with grpc-gateway's status table and JSON error body."""

from __future__ import annotations

import json
from typing import Any

import grpc
from google.protobuf import json_format

# Registers the google.rpc detail types so Any details can be rendered as JSON.
from google.rpc import (
    error_details_pb2,  # noqa: F401
    status_pb2,
)

from engine.rpc.metadata import DETAILS_KEY

# grpc-gateway's runtime.HTTPStatusFromCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

WWW_AUTHENTICATE = 'PSK realm="workflow-engine", Bearer realm="workflow-engine"'
JSON_TYPE = "application/json"

Headers = list[tuple[str, str]]


def error_body(code: grpc.StatusCode, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    """The JSON error body `{code, message, details}` (code is the gRPC code number)."""
    return json.dumps(
        {"code": code.value[0], "message": message, "details": details or []}, separators=(",", ":")
    ).encode()


def from_rpc_error(
    code: grpc.StatusCode, message: str, trailers: tuple[tuple[str, str | bytes], ...]
) -> tuple[int, Headers, bytes]:
    """HTTP status, extra headers and JSON body for a failed RPC."""
    headers: Headers = []
    details: list[dict[str, Any]] = []
    for key, value in trailers:
        if key == DETAILS_KEY and isinstance(value, bytes):
            details = _details_json(value)
        elif key == "retry-after" and isinstance(value, str):
            headers.append(("retry-after", value))
        elif key in ("ratelimit-policy", "ratelimit") and isinstance(value, str):
            headers.append((key, value))
    if code is grpc.StatusCode.UNAUTHENTICATED:
        headers.append(("www-authenticate", WWW_AUTHENTICATE))
    return HTTP_STATUS.get(code, 500), headers, error_body(code, message, details)


def _details_json(raw: bytes) -> list[dict[str, Any]]:
    try:
        status = status_pb2.Status.FromString(raw)
    except Exception:  # a malformed details header must not hide the error itself
        return []
    rendered = []
    for detail in status.details:
        try:
            rendered.append(json_format.MessageToDict(detail))
        except (TypeError, json_format.SerializeToJsonError):
            rendered.append({"@type": detail.type_url})
    return rendered
