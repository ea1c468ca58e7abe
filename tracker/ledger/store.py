"""Where ledger entries and signed checkpoints are kept: an append-only table of entries.

SQLite (the embedded default) and PostgreSQL (for leads who outgrow one machine) implement
the same small interface. The ledger above them is the only writer; every method that
writes returns only after the data is durable (committed with fsync).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from potluck.errors import PotluckError


@dataclass(frozen=True)
class StoredEntry:
    index: int
    data: bytes
    leaf_hash: bytes
    dedup_key: bytes | None


class LedgerUnavailableError(PotluckError):
    """The store cannot be reached now (a database restarting, say); a later call may succeed."""


class LedgerStoreBase(ABC):
    """Append-only storage of entries (by index) and of the checkpoints signed over them.

    A store is its log's only writer: opening one that another process has open raises
    `LedgerLockedError`. `location` names it in messages (never with a password).
    """

    location: str

    @abstractmethod
    def leaf_hashes(self, start: int = 0) -> list[bytes]:
        """The leaf hashes of entries start.., in index order (all of them rebuild the tree at start-up)."""

    @abstractmethod
    def find(self, dedup_keys: Sequence[bytes]) -> dict[bytes, int]:
        """The indices of already stored entries with these dedup keys."""

    @abstractmethod
    def insert(self, entries: Sequence[StoredEntry]) -> None:
        """Store new entries in one durable transaction: all of them, or (on error) none.

        An error may leave it unknown which (a connection lost during the COMMIT): the ledger then
        asks `leaf_hashes` what landed."""

    @abstractmethod
    def entries(self, start: int, end: int) -> list[bytes]:
        """Entry bytes for indices start..end-1."""

    @abstractmethod
    def save_checkpoint(self, size: int, note: str) -> None:
        """Durably record a signed checkpoint note for tree size `size`."""

    @abstractmethod
    def latest_checkpoint(self) -> tuple[int, str] | None:
        """The checkpoint with the largest size, if any was signed."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_store(location: str | Path) -> LedgerStoreBase:
    """`postgresql://…` opens PostgreSQL; anything else is a SQLite file path."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        from potluck.tracker.ledger.postgres_store import PostgresStore

        return PostgresStore(text)
    from potluck.tracker.ledger.sqlite_store import SqliteStore

    return SqliteStore(Path(text.removeprefix("sqlite:///")))


def batched(items: Iterable, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
