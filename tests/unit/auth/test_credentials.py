"""Dashboard API keys: shape, hashing, and constant-time comparison."""

from __future__ import annotations

import hashlib
import string

import pytest

from engine.auth.credentials import (
    API_KEY_PREFIX,
    VISIBLE_PREFIX_LENGTH,
    NewApiKey,
    generate_api_key,
    hash_api_key,
    looks_like_api_key,
    secrets_equal,
)

BASE62 = set(string.ascii_letters + string.digits)
KEY_LENGTH = 4 + 40


@pytest.fixture(scope="module")
def keys() -> list[NewApiKey]:
    return [generate_api_key() for _ in range(200)]


def test_prefix_constants() -> None:
    assert API_KEY_PREFIX == "wfe_"
    assert len("wfe_") + 8 == VISIBLE_PREFIX_LENGTH


def test_generated_key_has_prefix_length_and_base62_body(keys: list[NewApiKey]) -> None:
    for key in keys:
        assert key.plaintext.startswith("wfe_")
        assert len(key.plaintext) == KEY_LENGTH
        assert set(key.plaintext[4:]) <= BASE62


def test_generated_keys_use_the_whole_alphabet(keys: list[NewApiKey]) -> None:
    # 200 keys x 40 characters: every one of the 62 characters shows up (P(miss) is ~ 1e-52).
    seen = set("".join(k.plaintext[4:] for k in keys))
    assert seen == BASE62


def test_generated_keys_and_ids_are_unique(keys: list[NewApiKey]) -> None:
    assert len({k.plaintext for k in keys}) == len(keys)
    assert len({k.key_id for k in keys}) == len(keys)
    assert len({k.key_hash for k in keys}) == len(keys)


def test_key_id_format(keys: list[NewApiKey]) -> None:
    for key in keys:
        assert key.key_id.startswith("key_")
        body = key.key_id[4:]
        assert len(body) == 24
        assert set(body) <= set("0123456789abcdef")
        # The id is not derived from the secret.
        assert body not in key.plaintext


def test_visible_prefix_is_the_first_twelve_characters(keys: list[NewApiKey]) -> None:
    for key in keys:
        assert key.prefix == key.plaintext[:12]
        assert key.prefix.startswith("wfe_")
        assert len(key.prefix) == VISIBLE_PREFIX_LENGTH


def test_stored_hash_is_sha256_hex_of_the_plaintext(keys: list[NewApiKey]) -> None:
    for key in keys[:20]:
        assert key.key_hash == hashlib.sha256(key.plaintext.encode()).hexdigest()
        assert key.key_hash == hash_api_key(key.plaintext)
        assert key.plaintext not in key.key_hash


def test_hash_api_key_known_vector() -> None:
    # sha256("abc") from FIPS 180-2.
    assert hash_api_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hash_api_key_encodes_utf8() -> None:
    assert hash_api_key("é") == hashlib.sha256("é".encode()).hexdigest()
    assert hash_api_key("a") != hash_api_key("A")


def test_generated_keys_look_like_api_keys(keys: list[NewApiKey]) -> None:
    assert all(looks_like_api_key(k.plaintext) for k in keys)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "wfe_",
        "wfe_" + "a" * 39,  # one short
        "wfe_" + "a" * 41,  # one long
        "WFE_" + "a" * 40,  # prefix is case-sensitive
        "wfx_" + "a" * 40,
        "a" * 44,  # right length, no prefix
        "wfe_" + "a" * 39 + "-",
        "wfe_" + "a" * 39 + "_",
        "wfe_" + "a" * 39 + " ",
        "wfe_" + "a" * 39 + "é",  # not ASCII
        "wfe_" + "a" * 39 + "\n",
        " wfe_" + "a" * 39,
    ],
)
def test_looks_like_api_key_rejects_wrong_shapes(value: str) -> None:
    assert not looks_like_api_key(value)


def test_looks_like_api_key_accepts_any_base62_body() -> None:
    assert looks_like_api_key("wfe_" + "Az09" * 10)


def test_secrets_equal_true_for_equal_values() -> None:
    assert secrets_equal("s3cret-value", "s3cret-value")
    assert secrets_equal("clé", "clé")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("s3cret", "s3creT"),
        ("s3cret", "s3cret "),
        ("s3cre", "s3cret"),
        ("", "s3cret"),
        ("s3cret", ""),
        ("", ""),
    ],
)
def test_secrets_equal_false_for_different_or_empty(given: str, expected: str) -> None:
    assert secrets_equal(given, expected) is False
