"""What an auditor remembers between runs, in one directory:

    checkpoint   the last checkpoint note it verified, verbatim
    entries      every entry under that checkpoint, in index order, one base64 line each
    evidence/    pairs of signed checkpoints that prove the tracker lied (rollback, split view, fork)

`audit export` writes the same `checkpoint` and `entries` files, so an export can be compared and
re-verified like a state directory. The copy of the entries lets a re-run download only what is new;
it is never trusted: its root is recomputed and checked against the saved, signed checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from potluck.atomic_file import write_file_atomically
from potluck.errors import ConfigError, VerificationError
from potluck.home import potluck_home
from potluck.tlog.checkpoint import Checkpoint, verify_checkpoint
from potluck.tlog.merkle import MerkleTree, leaf_hash

__all__ = [
    "CHECKPOINT_FILE",
    "ENTRIES_FILE",
    "AuditState",
    "StateError",
    "default_state_dir",
    "encode_entry_lines",
    "read_entry_chunks",
    "write_state_file",
]

CHECKPOINT_FILE = "checkpoint"
ENTRIES_FILE = "entries"
EVIDENCE_DIR = "evidence"
_NEW_ENTRIES_FILE = "entries.new"
_LOCK_FILE = "lock"
READ_CHUNK = 1024
_READ_HINT = 1 << 20  # bytes of lines read at a time


class StateError(ConfigError):
    """The state directory is unusable: unreadable, locked, or inconsistent with its own checkpoint."""


def default_state_dir(log_key: str) -> Path:
    """`$POTLUCK_HOME/audit/<origin>-<keyid>`: one state directory per pinned log key."""
    origin, _, rest = log_key.partition("+")
    kid = rest.partition("+")[0]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", origin).strip("._") or "log"
    return potluck_home() / "audit" / f"{safe}-{kid}"


def encode_entry_lines(entries: Iterable[bytes]) -> bytes:
    return b"".join(base64.b64encode(data) + b"\n" for data in entries)


def read_entry_chunks(path: Path, size: int, chunk: int = READ_CHUNK) -> Iterator[list[bytes]]:
    """The first `size` entries of an entries file, decoded, in chunks. Raises `StateError` if it has fewer."""
    index = 0
    try:
        with open(path, "rb") as f:
            while index < size:
                lines = f.readlines(_READ_HINT)
                if not lines:
                    break
                lines = lines[: size - index]
                complete = len(lines) if lines[-1].endswith(b"\n") else len(lines) - 1
                try:
                    batch = [binascii.a2b_base64(line[:-1], strict_mode=True) for line in lines[:complete]]
                except binascii.Error:
                    raise StateError(f"{path}: an entry line after line {index} is not base64") from None
                for offset in range(0, len(batch), chunk):
                    yield batch[offset:offset + chunk]
                index += complete
                if complete < len(lines):
                    break
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StateError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if index < size:
        raise StateError(f"{path}: holds {index} entries, but its checkpoint covers {size}; "
                         "the auditor state is damaged (remove the directory to start over)")


def write_state_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically and durably; a failure is a `StateError` naming the file."""
    try:
        write_file_atomically(path, data)
    except OSError as exc:
        raise StateError(f"{path}: cannot write ({exc.strerror or exc})") from None


class AuditState:
    """An auditor's state directory, locked against a second auditor process for as long as it is open."""

    def __init__(self, directory: Path):
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.directory / _LOCK_FILE, "a")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise StateError(f"--state-dir {self.directory}: cannot use it ({exc.strerror or exc})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StateError(f"--state-dir {self.directory}: another audit is using it") from None
        self.checkpoint_path = self.directory / CHECKPOINT_FILE
        self.entries_path = self.directory / ENTRIES_FILE
        self._new_path = self.directory / _NEW_ENTRIES_FILE
        self._new_file = None

    def close(self) -> None:
        self.discard_new_entries()
        self._lock.close()

    def __enter__(self) -> AuditState:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load(self, log_key: str) -> tuple[str, Checkpoint, MerkleTree] | None:
        """The saved note, its checkpoint and the tree of the local copy of its entries; None on a first run.

        Raises `StateError` if the saved checkpoint is not one of this log's, or the local copy of the
        entries does not hash to its root.
        """
        try:
            note = self.checkpoint_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"{self.checkpoint_path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        try:
            checkpoint = verify_checkpoint(note, log_key)
        except VerificationError as exc:
            raise StateError(f"{self.checkpoint_path}: not a checkpoint of this log ({exc}); "
                             "use another --state-dir for another log") from None
        tree = MerkleTree()
        for chunk in read_entry_chunks(self.entries_path, checkpoint.size):
            tree.extend(leaf_hash(data) for data in chunk)
        if tree.root() != checkpoint.root_hash:
            raise StateError(f"{self.entries_path}: the local copy of the entries does not hash to the saved "
                             f"checkpoint's root (size {checkpoint.size}); the state is damaged "
                             "(remove the directory to start over)")
        return note, checkpoint, tree

    def local_entries(self, size: int) -> Iterator[list[bytes]]:
        return read_entry_chunks(self.entries_path, size)

    def stage_new_entries(self, entries: list[bytes]) -> None:
        """Keep downloaded entries aside until the audit passes; `commit` adds them to the local copy."""
        if self._new_file is None:
            self._new_file = open(self._new_path, "wb")  # noqa: SIM115 - closed by commit/discard
        self._new_file.write(encode_entry_lines(entries))

    def staged_entries(self, count: int) -> Iterator[list[bytes]]:
        """Read back the `count` entries staged so far."""
        if self._new_file is not None:
            self._new_file.flush()
        return read_entry_chunks(self._new_path, count)

    def discard_new_entries(self) -> None:
        if self._new_file is not None:
            self._new_file.close()
            self._new_file = None
        self._new_path.unlink(missing_ok=True)

    def commit(self, note: str, old_size: int) -> None:
        """Append the staged entries to the local copy, then save `note` as the verified checkpoint.

        The entries are made durable first: a crash in between leaves a longer entries file under the
        old checkpoint, and only the first `size` lines of it are ever read.
        """
        try:
            with open(self.entries_path, "ab") as out:
                out.truncate(self._offset_after(old_size))
                out.seek(0, os.SEEK_END)
                if self._new_file is not None:
                    self._new_file.close()
                    self._new_file = None
                    with open(self._new_path, "rb") as staged:
                        while block := staged.read(1 << 20):
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise StateError(f"{self.entries_path}: cannot write ({exc.strerror or exc})") from None
        self._new_path.unlink(missing_ok=True)
        write_state_file(self.checkpoint_path, note.encode("utf-8"))

    def save_evidence(self, kind: str, notes: dict[str, str]) -> Path:
        """Keep signed notes that contradict each other, e.g. {"saved": …, "served": …}; returns the folder."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = self.directory / EVIDENCE_DIR / f"{stamp}-{kind}"
        n = 1
        while folder.exists():
            n += 1
            folder = self.directory / EVIDENCE_DIR / f"{stamp}-{kind}-{n}"
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise StateError(f"{folder}: cannot create ({exc.strerror or exc})") from None
        for name, note in notes.items():
            write_state_file(folder / f"{name}.checkpoint", note.encode("utf-8"))
        return folder

    def _offset_after(self, size: int) -> int:
        """Byte offset just past line `size` of the entries file (drops lines a crashed commit left)."""
        if size == 0:
            return 0
        offset = 0
        with open(self.entries_path, "rb") as f:
            for _ in range(size):
                offset += len(f.readline())
        return offset
