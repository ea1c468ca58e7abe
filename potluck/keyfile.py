"""Secret key files: written atomically with mode 0600, refused when others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from potluck.atomic_file import write_file_atomically
from potluck.errors import KeyFileError


def write_secret_file(path: Path, data: bytes, *, force: bool = False) -> None:
    """Write `data` to `path`, readable by its owner only; refuse to replace a file unless `force`."""
    if path.exists() and not force:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite it (pass --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_file_atomically(path, data, mode=0o600)


def read_secret_file(path: Path, *, hint: str = "") -> bytes:
    """Read a secret file, refusing one that is missing, not a regular file, or readable by others."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file does not exist{hint}") from None
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read key file ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path}: not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: key file is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`"
        )
    try:
        return path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read key file ({e.strerror})") from None


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """A random secret kept 0600 at `path`, created on first use."""
    if not path.exists():
        write_secret_file(path, os.urandom(size))
    secret = read_secret_file(path)
    if len(secret) != size:
        raise KeyFileError(f"{path}: corrupt secret (expected {size} bytes, got {len(secret)})")
    return secret
