"""Gateway pieces without a server: Grpc-Timeout parsing, status table, error bodies."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from engine.gateway import errors
from engine.gateway.app import _grpc_timeout
from engine.gateway.transcode import BadRequest


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5S", 5.0),
        ("100m", 0.1),
        ("2M", 120.0),
        ("1H", 3600.0),
        ("250u", 0.00025),
        ("10n", 1e-8),
        (None, None),
    ],
)
def test_grpc_timeout_units(header: str | None, seconds: float | None) -> None:
    if seconds is None:
        assert _grpc_timeout(header) is None
    else:
        assert _grpc_timeout(header) == pytest.approx(seconds)


@pytest.mark.parametrize("header", ["soon", "5", "S", "-5S", "1.5S", "123456789S", "5s"])
def test_bad_grpc_timeouts(header: str) -> None:
    with pytest.raises(BadRequest):
        _grpc_timeout(header)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.CANCELLED, 499),
    ],
)
def test_status_table(code: grpc.StatusCode, status: int) -> None:
    http_status, headers, body = errors.from_rpc_error(code, "m", ())
    assert http_status == status
    assert json.loads(body) == {"code": code.value[0], "message": "m", "details": []}
    assert ("www-authenticate" in dict(headers)) is (code is grpc.StatusCode.UNAUTHENTICATED)


def test_details_become_json_any_and_rate_limit_headers_pass() -> None:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3)))
    status = status_pb2.Status(code=8, message="slow down", details=[detail])
    trailers = (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("retry-after", "3"),
        ("ratelimit-policy", '"credential";q=5;w=10'),
        ("ratelimit", '"credential";r=0;t=3'),
    )
    http_status, headers, body = errors.from_rpc_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", trailers
    )
    assert http_status == 429
    assert dict(headers) == {
        "retry-after": "3",
        "ratelimit-policy": '"credential";q=5;w=10',
        "ratelimit": '"credential";r=0;t=3',
    }
    assert json.loads(body)["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}
    ]


def test_malformed_details_do_not_hide_the_error() -> None:
    _status, _headers, body = errors.from_rpc_error(
        grpc.StatusCode.INTERNAL, "boom", (("grpc-status-details-bin", b"\xff\xff"),)
    )
    assert json.loads(body) == {"code": 13, "message": "boom", "details": []}
