"""SecretCipher: authenticated encryption of secrets at rest."""

from __future__ import annotations

import pytest

from engine.crypto import SecretCipher, SecretDecryptionError

KEY = "k" * 32 + "-unit-test-secret-key"
OTHER_KEY = "o" * 32 + "-another-secret-key"
NONCE_SIZE = 24
MAC_SIZE = 16


@pytest.fixture
def cipher() -> SecretCipher:
    return SecretCipher(KEY)


@pytest.mark.parametrize("plaintext", ["", "a", "whsec_" + "x" * 60, "clé à molette ☃ 🔑", "x" * 10_000])
def test_round_trip(cipher: SecretCipher, plaintext: str) -> None:
    sealed = cipher.seal(plaintext)
    assert isinstance(sealed, bytes)
    assert cipher.open(sealed) == plaintext


def test_ciphertext_hides_the_plaintext_and_carries_nonce_and_mac(cipher: SecretCipher) -> None:
    plaintext = "super-secret-webhook-signing-key"
    sealed = cipher.seal(plaintext)
    assert plaintext.encode() not in sealed
    assert len(sealed) == NONCE_SIZE + MAC_SIZE + len(plaintext.encode())


def test_each_seal_uses_a_fresh_nonce(cipher: SecretCipher) -> None:
    sealed = [cipher.seal("same plaintext") for _ in range(50)]
    assert len(set(sealed)) == 50
    assert len({s[:NONCE_SIZE] for s in sealed}) == 50
    assert all(cipher.open(s) == "same plaintext" for s in sealed)


def test_key_derivation_is_deterministic() -> None:
    sealed = SecretCipher(KEY).seal("persisted across restarts")
    assert SecretCipher(KEY).open(sealed) == "persisted across restarts"


@pytest.mark.parametrize("position", [0, NONCE_SIZE - 1, NONCE_SIZE, NONCE_SIZE + MAC_SIZE, -1])
def test_flipping_any_byte_is_detected(cipher: SecretCipher, position: int) -> None:
    sealed = bytearray(cipher.seal("tamper with me"))
    sealed[position] ^= 0x01
    with pytest.raises(SecretDecryptionError):
        cipher.open(bytes(sealed))


def test_every_single_byte_flip_is_detected(cipher: SecretCipher) -> None:
    sealed = cipher.seal("short")
    for position in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x80
        with pytest.raises(SecretDecryptionError):
            cipher.open(bytes(tampered))


def test_truncated_or_extended_ciphertext_is_detected(cipher: SecretCipher) -> None:
    sealed = cipher.seal("length matters")
    for broken in (sealed[:-1], sealed + b"\x00", sealed[1:]):
        with pytest.raises(SecretDecryptionError):
            cipher.open(broken)


@pytest.mark.parametrize("garbage", [b"", b"abc", b"\x00" * NONCE_SIZE, b"\x00" * (NONCE_SIZE + MAC_SIZE)])
def test_garbage_is_a_decryption_error(cipher: SecretCipher, garbage: bytes) -> None:
    with pytest.raises(SecretDecryptionError):
        cipher.open(garbage)


def test_another_key_cannot_open(cipher: SecretCipher) -> None:
    sealed = cipher.seal("for KEY only")
    with pytest.raises(SecretDecryptionError):
        SecretCipher(OTHER_KEY).open(sealed)
    # A key differing by a single character is just as foreign.
    with pytest.raises(SecretDecryptionError):
        SecretCipher(KEY[:-1] + "X").open(sealed)


def test_decryption_error_message_does_not_leak_key_or_plaintext(cipher: SecretCipher) -> None:
    sealed = bytearray(cipher.seal("the-plaintext"))
    sealed[-1] ^= 0xFF
    with pytest.raises(SecretDecryptionError) as caught:
        cipher.open(bytes(sealed))
    message = str(caught.value)
    assert KEY not in message
    assert "the-plaintext" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
