"""Private files of the data directory: the directory is 0700, every secret a 0600 file written atomically.

A secret is read back only if it looks like one (long enough, the expected characters): an empty or short file,
left behind e.g. by a full disk, never opens anything. What happens to such a file is the caller's choice:
a secret the gateway can replace (the admin token, the ARI password) is regenerated; one whose loss would lose
data (the session key) is refused with one line saying what to do.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_LENGTH = 32  # characters of secrets.token_urlsafe(24)
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class SecretFileError(Exception):
    """A secret file that cannot be used; the message says which and what to do."""


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) 0700; an existing directory open to others is tightened, with a log line."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    tighten(path, 0o700)
    return path


def tighten(path: Path, mode: int) -> None:
    """Take away permissions beyond `mode` from an existing file or directory (logged when it changes)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode:
        os.chmod(path, current & mode)
        log.warning("%s was %04o (readable by others): tightened to %04o", path, current, current & mode)


def write_secret(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (temp file, fsync, rename): a failed write leaves the old file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _create_secret(path: Path, data: bytes) -> bool:
    """Write `data` to `path` only if no file is there; False if another process created it first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temp, path)  # atomic, and fails if the name exists: the first writer wins
    except FileExistsError:
        return False
    finally:
        Path(temp).unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_secret(
    path: Path, generate: Callable[[], bytes], valid: Callable[[bytes], bool], *, regenerate: bool, what: str
) -> bytes:
    """The secret in `path`, created with `generate()` when missing.

    A file that is not `valid` (empty, short, damaged) is replaced by a new secret when `regenerate`, else refused
    with SecretFileError. A file that cannot be read is refused either way."""
    try:
        return _load_secret(path, generate, valid, regenerate, what)
    except SecretFileError:
        raise
    except OSError as exc:  # e.g. a full disk or a read-only data directory while writing a new secret
        raise SecretFileError(f"{what} {path} cannot be written ({exc.strerror or exc})") from None


def _load_secret(
    path: Path, generate: Callable[[], bytes], valid: Callable[[bytes], bool], regenerate: bool, what: str
) -> bytes:
    for _ in range(3):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if _create_secret(path, generate()):
                return path.read_bytes()
            continue  # another process created it first: read theirs
        except OSError as exc:
            raise SecretFileError(f"{what} {path} cannot be read ({exc.strerror}); fix its owner/permissions "
                                  f"or remove it") from None
        tighten(path, 0o600)
        if valid(data):
            return data
        if not regenerate:
            state = "empty" if not data else f"damaged ({len(data)} bytes)"
            raise SecretFileError(f"{what} {path} is {state}; restore it from a backup, or remove it to start "
                                  f"over (what it protects is lost)")
        log.warning("%s %s was %s: a new one was generated", what, path,
                    "empty" if not data else f"not a valid secret ({len(data)} bytes)")
        write_secret(path, generate())
        return path.read_bytes()
    raise SecretFileError(f"{what} {path} keeps changing while it is read")


def _token_valid(data: bytes) -> bool:
    text = data.strip()
    return len(text) >= TOKEN_LENGTH and all(chr(b) in _TOKEN_CHARS for b in text)


def secret_token(path: Path, what: str) -> str:
    """A random text token (admin token, ARI password) kept in `path`; an empty or short one is regenerated."""
    data = load_secret(path, lambda: secrets.token_urlsafe(24).encode(), _token_valid, regenerate=True, what=what)
    return data.strip().decode()
