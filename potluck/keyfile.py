"""Secret key files: created once, atomically, with mode 0600; read only if they are the owner's own.

Threats: another local user (or a hostile image) planting a symlink where a key will be read or
created, or a file they own; two processes starting at once each creating a different key (one
of them then signs with a key that is not on disk). So a file is opened without following a
symlink and checked on the open descriptor (no gap between the check and the read), and a new
file is linked into place only if nothing is there yet: the loser of a race reads the winner's key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from potluck.atomic_file import write_file_atomically
from potluck.errors import KeyFileError

MAX_SECRET_BYTES = 1 << 20


class KeyExistsError(KeyFileError):
    """The key file is already there (written by an earlier run, or by another process just now)."""


def write_secret_file(path: Path, data: bytes, *, force: bool = False) -> None:
    """Write `data` to `path`, readable by its owner only; refuse to replace a file unless `force`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if force:
        write_file_atomically(path, data, mode=0o600)
        return
    if os.path.lexists(path):
        raise KeyExistsError(f"{path}: already exists; refusing to overwrite it (pass --force to replace it)")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # atomic, and never over an existing file (a symlink included)
    except FileExistsError:
        raise KeyExistsError(f"{path}: already exists; refusing to overwrite it (pass --force to replace it)") \
            from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def create_secret_file(path: Path, data: bytes) -> None:
    """Create `path` with `data` unless it exists already (then what is there is the key: read it)."""
    with contextlib.suppress(KeyExistsError):
        write_secret_file(path, data)


def read_secret_file(path: Path, *, hint: str = "") -> bytes:
    """Read a secret file, refusing one that is missing, a symlink, not a regular file, not owned by this
    user, or readable by others; every check is made on the open file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file does not exist{hint}") from None
    except OSError as e:
        if os.path.islink(path):
            raise KeyFileError(f"{path}: is a symbolic link; a key file must be the file itself") from None
        raise KeyFileError(f"{path}: cannot read key file ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise KeyFileError(f"{path}: key file is owned by uid {st.st_uid}, not by this user (uid "
                               f"{os.geteuid()}); a key file must be your own")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"{path}: key file is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`")
        chunks, size = [], 0
        while size <= MAX_SECRET_BYTES and (chunk := os.read(fd, 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read key file ({e.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_BYTES:
        raise KeyFileError(f"{path}: {st.st_size} bytes is too large for a key file")
    return data


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """A random secret kept 0600 at `path`, created on first use (once, whoever starts first)."""
    if not os.path.lexists(path):
        create_secret_file(path, os.urandom(size))
    secret = read_secret_file(path)
    if len(secret) != size:
        raise KeyFileError(f"{path}: corrupt secret (expected {size} bytes, got {len(secret)})")
    return secret
