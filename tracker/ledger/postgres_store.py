"""The ledger store for leads who outgrow one machine: PostgreSQL through psycopg."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import psycopg

from potluck.errors import ConfigError
from potluck.tracker.ledger.store import LedgerStoreBase, StoredEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx BIGINT PRIMARY KEY,
    data BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL,
    dedup_key BYTEA UNIQUE
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL
);
"""
CONNECT_TIMEOUT = 10


class PostgresStore(LedgerStoreBase):
    def __init__(self, url: str):
        try:
            self.db = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=False)
            with self.db.transaction():
                # synchronous_commit=on (the default, insisted on here): COMMIT waits for the WAL flush.
                self.db.execute("SET synchronous_commit = on")
                self.db.execute(SCHEMA)
        except psycopg.Error as e:
            raise ConfigError(f"cannot open the ledger database at {_redact(url)} ({str(e).strip()})") from None
        self.lock = threading.Lock()

    def leaf_hashes(self) -> list[bytes]:
        with self.lock, self.db.transaction():
            return [bytes(row[0]) for row in self.db.execute("SELECT leaf_hash FROM entries ORDER BY idx")]

    def find(self, dedup_keys: Sequence[bytes]) -> dict[bytes, int]:
        if not dedup_keys:
            return {}
        with self.lock, self.db.transaction():
            rows = self.db.execute("SELECT dedup_key, idx FROM entries WHERE dedup_key = ANY(%s)", (list(dedup_keys),))
            return {bytes(key): idx for key, idx in rows}

    def insert(self, entries: Sequence[StoredEntry]) -> None:
        with self.lock, self.db.transaction(), self.db.cursor() as cur:
            cur.executemany(
                "INSERT INTO entries (idx, data, leaf_hash, dedup_key) VALUES (%s, %s, %s, %s)",
                [(e.index, e.data, e.leaf_hash, e.dedup_key) for e in entries],
            )

    def entries(self, start: int, end: int) -> list[bytes]:
        with self.lock, self.db.transaction():
            rows = self.db.execute("SELECT data FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx", (start, end))
            return [bytes(row[0]) for row in rows]

    def save_checkpoint(self, size: int, note: str) -> None:
        with self.lock, self.db.transaction():
            self.db.execute(
                "INSERT INTO checkpoints (size, note) VALUES (%s, %s) ON CONFLICT (size) DO UPDATE SET note = %s",
                (size, note, note),
            )

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with self.lock, self.db.transaction():
            return self.db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()

    def close(self) -> None:
        with self.lock:
            self.db.close()


def _redact(url: str) -> str:
    """A database URL without its password, for error messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"postgresql://{info.get('user', '')}@{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
