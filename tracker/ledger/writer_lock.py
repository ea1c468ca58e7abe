"""One writer per log: an exclusive lock on a file, held while the tracker runs.

`flock` locks belong to an open file, so the kernel drops them when their holder dies: a crashed
tracker never leaves a stale lock behind, and no one has to delete a file by hand to start again.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from potluck.errors import ConfigError, PotluckError

STATE_DIR_LOCK_FILE = "tracker.lock"


class LedgerLockedError(PotluckError):
    """Another tracker already writes this log (its database, or its state directory and key)."""


class WriterLock:
    """An exclusive, non-blocking `flock` on `path`, which says `what` is locked; `release` lets go."""

    def __init__(self, path: Path, what: str):
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot open the lock file for {what} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip()
            os.close(self.fd)
            raise LedgerLockedError(f"another tracker holds {what} (lock {path}"
                                    f"{f', pid {holder}' if holder.isdigit() else ''}); stop it first, "
                                    "or give this one its own") from None
        # The pid is for the message above only: the lock is the flock, not the file's contents.
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode("ascii"), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
