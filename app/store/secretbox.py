"""Encryption at rest for Telegram sessions: AES-256-GCM with a key from the data directory or the environment.

The key is `TGTRUNK_SECRET_KEY` (any text; hashed to 32 bytes) when set, else `<data_dir>/secret.key`, 32 random
bytes created with mode 0600 on first use. Each ciphertext is bound to a context (the account name), so a
session copied onto another account's row does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.store.secretfile import load_secret

ENV_KEY = "TGTRUNK_SECRET_KEY"
VERSION = b"v1"


class SecretBoxError(Exception):
    """The data cannot be decrypted with this key (wrong key, or tampered)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the secret key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_env_or_file(cls, key_path: Path, env: dict[str, str] | None = None) -> "SecretBox":
        env = dict(os.environ if env is None else env)
        if env.get(ENV_KEY):
            return cls(hashlib.sha256(env[ENV_KEY].encode()).digest())
        return cls(load_or_create_key(key_path))

    def encrypt(self, plaintext: bytes, context: str = "") -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, VERSION + context.encode())
        return (VERSION + b":" + base64.urlsafe_b64encode(nonce + sealed)).decode()

    def decrypt(self, token: str, context: str = "") -> bytes:
        version, _, body = token.encode().partition(b":")
        if version != VERSION:
            raise SecretBoxError("unknown secret format")
        raw = base64.urlsafe_b64decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], VERSION + context.encode())
        except InvalidTag:
            raise SecretBoxError("cannot decrypt: wrong secret key or damaged data") from None


def load_or_create_key(path: Path) -> bytes:
    """32 random bytes, created on first use; an empty or short key file is refused, never replaced (the
    sessions encrypted with the old key would be lost)."""
    return load_secret(path, lambda: os.urandom(32), lambda key: len(key) == 32, regenerate=False,
                       what="the session key")
