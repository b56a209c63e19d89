"""rich_status: domain errors as gRPC statuses with google.rpc details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from engine.errors import (
    AlreadyExists,
    EngineError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    invalid,
)
from engine.rpc.metadata import DETAILS_KEY
from engine.rpc.status import ERROR_DOMAIN, internal_error_status, rich_status, status_code_of


def trailer_dict(trailers: list[tuple[str, str | bytes]]) -> dict[str, str | bytes]:
    keys = [key for key, _ in trailers]
    assert len(keys) == len(set(keys)), f"duplicate trailers: {keys}"
    return dict(trailers)


def status_of(trailers: list[tuple[str, str | bytes]]) -> status_pb2.Status:
    raw = trailer_dict(trailers)[DETAILS_KEY]
    assert isinstance(raw, bytes)
    return status_pb2.Status.FromString(raw)


def test_details_key_is_the_grpc_convention() -> None:
    assert DETAILS_KEY == "grpc-status-details-bin"
    assert DETAILS_KEY.endswith("-bin")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgument("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (Unauthenticated("who"), grpc.StatusCode.UNAUTHENTICATED),
        (PermissionDenied("no"), grpc.StatusCode.PERMISSION_DENIED),
        (NotFound("gone"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExists("dup"), grpc.StatusCode.ALREADY_EXISTS),
        (FailedPrecondition("state"), grpc.StatusCode.FAILED_PRECONDITION),
        (ResourceExhausted("slow down"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (EngineError("base"), grpc.StatusCode.UNKNOWN),
    ],
)
def test_codes_and_status_body_agree(error: EngineError, code: grpc.StatusCode) -> None:
    assert status_code_of(error) is code
    got_code, message, trailers = rich_status(error)
    assert got_code is code
    assert message == error.message
    status = status_of(trailers)
    assert status.code == code.value[0]
    assert status.message == error.message


def test_unmapped_subclass_is_unknown_but_subclass_of_mapped_keeps_code() -> None:
    class Custom(EngineError):
        pass

    class SpecialNotFound(NotFound):
        pass

    assert status_code_of(Custom("x")) is grpc.StatusCode.UNKNOWN
    assert status_code_of(SpecialNotFound("x")) is grpc.StatusCode.NOT_FOUND


def test_invalid_argument_carries_bad_request_naming_each_field() -> None:
    error = InvalidArgument(
        "invalid request",
        [
            FieldViolation("agencyId", "must be 1-64 characters"),
            FieldViolation("dashboardUrl", "must be http"),
        ],
    )
    code, _, trailers = rich_status(error)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    status = status_of(trailers)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert len(status.details) == 1
    detail = status.details[0]
    assert detail.Is(error_details_pb2.BadRequest.DESCRIPTOR)
    bad_request = error_details_pb2.BadRequest()
    assert detail.Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("agencyId", "must be 1-64 characters"),
        ("dashboardUrl", "must be http"),
    ]
    assert set(trailer_dict(trailers)) == {DETAILS_KEY}


def test_invalid_shortcut_names_the_field() -> None:
    _, message, trailers = rich_status(invalid("pageToken", "is not a token returned by this API"))
    assert "pageToken" in message
    bad_request = error_details_pb2.BadRequest()
    assert status_of(trailers).details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "pageToken"


def test_invalid_argument_without_violations_has_no_details() -> None:
    _, _, trailers = rich_status(InvalidArgument("bad"))
    assert list(status_of(trailers).details) == []


def test_resource_exhausted_carries_retry_info_and_retry_after_trailer() -> None:
    error = ResourceExhausted("rate limit exceeded", retry_after_seconds=7, limit=20, window_seconds=4.0)
    code, message, trailers = rich_status(error)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert message == "rate limit exceeded"
    metadata = trailer_dict(trailers)
    assert metadata["retry-after"] == "7"
    assert metadata["ratelimit-policy"] == '"credential";q=20;w=4'
    assert metadata["ratelimit"] == '"credential";r=0;t=7'
    status = status_of(trailers)
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    retry_infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry_infos) == 1
    retry = error_details_pb2.RetryInfo()
    retry_infos[0].Unpack(retry)
    assert retry.retry_delay.seconds == 7
    assert retry.retry_delay.nanos == 0
    quota = [d for d in status.details if d.Is(error_details_pb2.QuotaFailure.DESCRIPTOR)]
    assert len(quota) == 1
    failure = error_details_pb2.QuotaFailure()
    quota[0].Unpack(failure)
    assert failure.violations[0].subject == "credential"
    assert "20" in failure.violations[0].description


@pytest.mark.parametrize(("window", "shown"), [(0.01, 1), (0.4, 1), (1.0, 1), (2.6, 3), (60.0, 60)])
def test_ratelimit_policy_window_is_whole_seconds_at_least_one(window: float, shown: int) -> None:
    _, _, trailers = rich_status(
        ResourceExhausted("x", retry_after_seconds=1, limit=5, window_seconds=window)
    )
    assert trailer_dict(trailers)["ratelimit-policy"] == f'"credential";q=5;w={shown}'


def test_trailer_values_are_ascii_strings_except_binary_details() -> None:
    _, _, trailers = rich_status(ResourceExhausted("x", retry_after_seconds=3, limit=5))
    for key, value in trailers:
        assert key == key.lower()
        if key.endswith("-bin"):
            assert isinstance(value, bytes)
        else:
            assert isinstance(value, str) and value.isascii()


def test_permission_denied_with_reason_carries_error_info() -> None:
    error = PermissionDenied("this API key may only act for its own agency", reason="AGENCY_MISMATCH")
    code, _, trailers = rich_status(error)
    assert code is grpc.StatusCode.PERMISSION_DENIED
    status = status_of(trailers)
    assert len(status.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "AGENCY_MISMATCH"
    assert info.domain == ERROR_DOMAIN == "workflow-engine"
    assert "retry-after" not in trailer_dict(trailers)


def test_permission_denied_without_reason_has_no_details() -> None:
    _, _, trailers = rich_status(PermissionDenied("no"))
    assert list(status_of(trailers).details) == []


@pytest.mark.parametrize("error", [Unauthenticated("who"), NotFound("gone"), AlreadyExists("dup")])
def test_other_errors_have_only_the_status_trailer(error: EngineError) -> None:
    _, _, trailers = rich_status(error)
    assert set(trailer_dict(trailers)) == {DETAILS_KEY}
    assert list(status_of(trailers).details) == []


def test_internal_error_reveals_only_the_request_id() -> None:
    code, message, trailers = internal_error_status("req_abc123")
    assert code is grpc.StatusCode.INTERNAL
    assert message == "internal error (request id req_abc123)"
    status = status_of(trailers)
    assert status.code == code_pb2.INTERNAL
    assert status.message == message
    assert list(status.details) == []
