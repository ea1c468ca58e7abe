"""The embedded ledger store: one SQLite file in WAL mode with synchronous=FULL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from potluck.durable_sqlite import open_durable
from potluck.tracker.ledger.store import LedgerStoreBase, StoredEntry, batched
from potluck.tracker.ledger.writer_lock import WriterLock

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    data BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    dedup_key BLOB UNIQUE
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
"""


class SqliteStore(LedgerStoreBase):
    def __init__(self, path: Path):
        path = Path(path)
        self.path, self.location = path, str(path)
        # One writer: SQLite's own locks let a second process write between our transactions. The lock
        # file sits beside the database's real path, so another path to the same file meets it too.
        real = path.resolve()
        self.writer_lock = WriterLock(real.with_name(real.name + ".lock"), f"the ledger database {path}")
        try:
            # A commit returns only after the log is fsynced, so an acknowledged append is never lost.
            self.db = open_durable(path, SCHEMA, "the ledger database")
        except BaseException:
            self.writer_lock.release()
            raise
        self.lock = threading.Lock()

    def leaf_hashes(self, start: int = 0) -> list[bytes]:
        with self.lock:
            return [row[0] for row in self.db.execute("SELECT leaf_hash FROM entries WHERE idx >= ? ORDER BY idx",
                                                      (start,))]

    def find(self, dedup_keys: Sequence[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        with self.lock:
            for chunk in batched(dedup_keys, 500):
                marks = ",".join("?" * len(chunk))
                rows = self.db.execute(f"SELECT dedup_key, idx FROM entries WHERE dedup_key IN ({marks})", chunk)
                found.update(rows)
        return found

    def insert(self, entries: Sequence[StoredEntry]) -> None:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    "INSERT INTO entries (idx, data, leaf_hash, dedup_key) VALUES (?, ?, ?, ?)",
                    [(e.index, e.data, e.leaf_hash, e.dedup_key) for e in entries],
                )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def entries(self, start: int, end: int) -> list[bytes]:
        with self.lock:
            rows = self.db.execute("SELECT data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
            return [row[0] for row in rows]

    def save_checkpoint(self, size: int, note: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?, ?)", (size, note))

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with self.lock:
            return self.db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()

    def close(self) -> None:
        with self.lock:
            self.db.close()
            self.writer_lock.release()
