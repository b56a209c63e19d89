"""Page tokens and page sizes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from engine.errors import InvalidArgument
from engine.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, decode_token, encode_token, page_size


@pytest.mark.parametrize(
    "position",
    [
        {},
        {"after": "agency_42"},
        {"create_time": "2024-01-02T03:04:05.123456Z", "id": 17},
        {"nested": {"a": [1, 2, 3]}, "unicode": "é☃", "none": None, "flag": True},
        {"id": "x" * 1000},
    ],
)
def test_token_round_trip(position: dict[str, Any]) -> None:
    token = encode_token(position)
    assert decode_token(token) == position


def test_token_is_url_safe_and_unpadded() -> None:
    # Values chosen so the JSON needs padding and contains bytes that map to +/ in standard base64.
    for position in ({"k": "?>?>"}, {"k": "~~~~~"}, {"id": 1}, {"ab": "c"}):
        token = encode_token(position)
        assert "=" not in token
        assert "+" not in token and "/" not in token
        assert decode_token(token) == position


def test_token_does_not_depend_on_key_order() -> None:
    assert encode_token({"a": 1, "b": 2}) == encode_token({"b": 2, "a": 1})


def test_empty_token_means_first_page() -> None:
    assert decode_token("") is None


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "garbage!!",
        "a",  # impossible base64 length
        "%%%%",
        b64(b"not json"),
        b64(b"[1, 2]"),  # JSON, but not an object
        b64(b'"a string"'),
        b64(b"42"),
        b64(b"null"),
        b64(b"\xff\xfe\xfd"),  # not UTF-8
        b64(b'{"unterminated": '),
    ],
)
def test_garbage_token_is_invalid_argument_naming_page_token(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_token(token)
    error = caught.value
    assert [v.field for v in error.violations] == ["pageToken"]
    assert error.message == "pageToken: is not a token returned by this API"


def test_deeply_nested_token_is_invalid_argument() -> None:
    token = b64(b"[" * 100_000)
    with pytest.raises(InvalidArgument):
        decode_token(token)


def test_truncated_token_is_rejected() -> None:
    token = encode_token({"after": "agency_1"})
    tampered = token[:-2]
    with pytest.raises(InvalidArgument):
        decode_token(tampered)


def test_token_accepts_padding_if_a_client_adds_it() -> None:
    position = {"id": 12}
    padded = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
    assert padded.endswith("=")
    assert decode_token(padded) == position


def test_page_size_defaults() -> None:
    assert DEFAULT_PAGE_SIZE == 50
    assert MAX_PAGE_SIZE == 500
    assert page_size(0) == 50


@pytest.mark.parametrize(
    ("requested", "used"), [(1, 1), (49, 49), (51, 51), (500, 500), (501, 500), (10**9, 500)]
)
def test_page_size_is_clamped(requested: int, used: int) -> None:
    assert page_size(requested) == used


@pytest.mark.parametrize("requested", [-1, -500, -(2**31)])
def test_negative_page_size_is_invalid(requested: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        page_size(requested)
    assert [v.field for v in caught.value.violations] == ["pageSize"]
    assert caught.value.violations[0].description == "must not be negative"
