"""Encryption of secrets at rest (PyNaCl SecretBox)."""

from __future__ import annotations

import hashlib

import nacl.exceptions
import nacl.secret

# Key derivation label: changing it would make every stored secret unreadable.
_KDF_PERSON = b"wfe-secretbox-v1"


class SecretDecryptionError(Exception):
    """Ciphertext was tampered with or was sealed under another key."""


class SecretCipher:
    """Seals and opens secrets under a key derived from ENGINE_SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        key = hashlib.blake2b(
            secret_key.encode("utf-8"), digest_size=nacl.secret.SecretBox.KEY_SIZE, person=_KDF_PERSON
        ).digest()
        self._box = nacl.secret.SecretBox(key)

    def seal(self, plaintext: str) -> bytes:
        """Encrypt and authenticate `plaintext`; a random nonce is prepended."""
        return bytes(self._box.encrypt(plaintext.encode("utf-8")))

    def open(self, ciphertext: bytes) -> str:
        """Decrypt `ciphertext`; raise SecretDecryptionError if it does not authenticate."""
        try:
            return self._box.decrypt(ciphertext).decode("utf-8")
        except nacl.exceptions.CryptoError:
            raise SecretDecryptionError("secret does not authenticate under ENGINE_SECRET_KEY") from None
