"""Encryption of stored secrets (OAuth tokens, PKCE verifiers) with the BRIDGE_SECRET_KEY keys.

`Settings.fernet` is a MultiFernet: the first key encrypts, every key decrypts. To rotate,
put a new key first ("NEW,OLD"), run `rotate` over the stored values, then drop OLD.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bridge.errors import FatalError


class UndecryptableToken(FatalError):
    """A stored secret cannot be read with the configured keys."""

    def __init__(self) -> None:
        # Deliberately fixed: the message must never carry the ciphertext or any key.
        super().__init__("stored token cannot be decrypted with BRIDGE_SECRET_KEY; was a key removed?")


class TokenBox:
    """Encrypts and decrypts short secrets as ASCII strings fit for a TEXT column."""

    def __init__(self, fernet: MultiFernet) -> None:
        self._fernet = fernet

    def __repr__(self) -> str:
        return "TokenBox(<keys hidden>)"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token_enc: str) -> str:
        try:
            return self._fernet.decrypt(token_enc.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise UndecryptableToken() from None

    def rotate(self, token_enc: str) -> str:
        """Re-encrypt under the first (newest) key; the plaintext never leaves this call."""
        try:
            return self._fernet.rotate(token_enc.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise UndecryptableToken() from None


def generate_key() -> str:
    """A fresh key for BRIDGE_SECRET_KEY (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode("ascii")
