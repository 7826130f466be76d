"""The admin pages' password: an scrypt hash in `<data dir>/admin-password` (0600), never the password itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from app.store.secretfile import write_secret

_N, _R, _P = 2**14, 8, 1
MIN_LENGTH = 10


class PasswordError(ValueError):
    """A password that cannot be set; the message says why."""


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)


def set_password(path: Path, password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"the admin password needs at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    text = f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(_hash(password, salt)).decode()}"
    write_secret(path, text.encode() + b"\n")


def check_password(path: Path, password: str) -> bool:
    """True when a password is set and `password` is it (a missing or damaged file matches nothing)."""
    try:
        kind, n, r, p, salt, digest = path.read_text().strip().split("$")
        if kind != "scrypt":
            return False
        given = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
        return hmac.compare_digest(given, base64.b64decode(digest))
    except (OSError, ValueError):
        return False


def fingerprint(path: Path) -> str:
    """Changes whenever the password does: sessions opened before a change are no longer valid."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "-"
