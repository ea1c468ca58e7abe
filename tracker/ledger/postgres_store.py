"""The ledger store for leads who outgrow one machine: PostgreSQL through psycopg.

The store holds a session-level advisory lock on its connection, so a second tracker on the same
database is refused. A database restart drops the connection (and with it the lock): the next call
reconnects, a bounded number of times with backoff, takes the lock again (from its own earlier
session, if the server has not noticed that one is gone: `_take_over`) and carries on. A call that
only reads, or writes what it may write twice, runs again on the new connection; an insert whose
connection was lost does not (its COMMIT may have landed): it fails, and the ledger asks what landed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg

from potluck.errors import ConfigError
from potluck.tracker.ledger.store import LedgerStoreBase, LedgerUnavailableError, StoredEntry
from potluck.tracker.ledger.writer_lock import LedgerLockedError

logger = logging.getLogger(__name__)

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
# After a lost connection: attempts 0.25 s, 0.5 s, … apart (about 8 s of waiting in all), each with
# RECONNECT_TIMEOUT, so a database restart is ridden out and a database gone for good is said soon.
RECONNECT_ATTEMPTS = 6
RECONNECT_BACKOFF = 0.25
RECONNECT_TIMEOUT = 3
# The key of the writer's advisory lock: one per database, whatever the lead named it.
WRITER_LOCK_KEY = int.from_bytes(hashlib.sha256(b"potluck ledger writer").digest()[:8], "big", signed=True)

T = TypeVar("T")


class PostgresStore(LedgerStoreBase):
    def __init__(self, url: str):
        self.url, self.location = url, _redact(url)
        self.lock = threading.Lock()
        self.session: tuple | None = None  # (pid, backend_start) of the server session holding the lock
        self.db = self._connect(CONNECT_TIMEOUT)

    def _connect(self, timeout: float, *, replacing: tuple | None = None) -> psycopg.Connection:
        """A connection holding the writer's lock; `replacing`: this store's earlier session, which may hold it."""
        try:
            db = psycopg.connect(self.url, connect_timeout=timeout, autocommit=False)
        except psycopg.Error as e:
            raise ConfigError(f"cannot open the ledger database at {self.location} ({str(e).strip()})") from None
        try:
            with db.transaction():
                # synchronous_commit=on (the default, insisted on here): COMMIT waits for the WAL flush.
                db.execute("SET synchronous_commit = on")
                db.execute(SCHEMA)
                # Session-level (it outlives this transaction), so held until the connection ends.
                [locked] = db.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)).fetchone()
                if not locked and replacing is not None:
                    locked = _take_over(db, replacing)
                session = db.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                                     ).fetchone()
        except psycopg.Error as e:
            db.close()
            raise ConfigError(f"cannot open the ledger database at {self.location} ({str(e).strip()})") from None
        if not locked:
            db.close()
            raise LedgerLockedError(f"another tracker holds the ledger database {self.location} (advisory lock "
                                    f"{WRITER_LOCK_KEY}); stop it first, or give this one its own --db")
        self.session = session
        return db

    def _reconnect(self) -> None:
        self.db.close()
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                self.db = self._connect(RECONNECT_TIMEOUT, replacing=self.session)
                logger.info("reconnected to the ledger database %s", self.location)
                return
            except ConfigError as e:  # not LedgerLockedError: another tracker took the log meanwhile
                logger.warning("reconnecting to the ledger database (attempt %d): %s", attempt + 1, e)
                last = e
            time.sleep(RECONNECT_BACKOFF * 2**attempt)
        raise LedgerUnavailableError(f"lost the ledger database {self.location} and could not reconnect in "
                                     f"{RECONNECT_ATTEMPTS} attempts: {last}")

    def _run(self, work: Callable[[psycopg.Connection], T], *, again: bool = True) -> T:
        """`work` in one transaction; after a lost connection, reconnect and (if `again`) run it once more."""
        with self.lock:
            if self.db.closed or self.db.broken:  # lost earlier, and not reconnected since
                self._reconnect()
            try:
                with self.db.transaction():
                    return work(self.db)
            except psycopg.OperationalError as e:
                if not (self.db.closed or self.db.broken):
                    raise
                logger.warning("lost the connection to the ledger database %s: %s", self.location, str(e).strip())
                if not again:
                    raise LedgerUnavailableError(f"lost the connection to the ledger database {self.location} "
                                                 f"during a commit ({str(e).strip()})") from None
            self._reconnect()
            with self.db.transaction():
                return work(self.db)

    def leaf_hashes(self, start: int = 0) -> list[bytes]:
        return self._run(lambda db: [bytes(row[0]) for row in db.execute(
            "SELECT leaf_hash FROM entries WHERE idx >= %s ORDER BY idx", (start,))])

    def find(self, dedup_keys: Sequence[bytes]) -> dict[bytes, int]:
        if not dedup_keys:
            return {}
        return self._run(lambda db: {bytes(key): idx for key, idx in db.execute(
            "SELECT dedup_key, idx FROM entries WHERE dedup_key = ANY(%s)", (list(dedup_keys),))})

    def insert(self, entries: Sequence[StoredEntry]) -> None:
        def insert(db: psycopg.Connection) -> None:
            with db.cursor() as cur:
                cur.executemany("INSERT INTO entries (idx, data, leaf_hash, dedup_key) VALUES (%s, %s, %s, %s)",
                                [(e.index, e.data, e.leaf_hash, e.dedup_key) for e in entries])

        self._run(insert, again=False)

    def entries(self, start: int, end: int) -> list[bytes]:
        return self._run(lambda db: [bytes(row[0]) for row in db.execute(
            "SELECT data FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx", (start, end))])

    def save_checkpoint(self, size: int, note: str) -> None:
        self._run(lambda db: db.execute(  # the same note for the same size: safe to write twice
            "INSERT INTO checkpoints (size, note) VALUES (%s, %s) ON CONFLICT (size) DO UPDATE SET note = %s",
            (size, note, note)))

    def latest_checkpoint(self) -> tuple[int, str] | None:
        return self._run(lambda db: db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
                         .fetchone())

    def close(self) -> None:
        with self.lock:
            self.db.close()


def _take_over(db: psycopg.Connection, session: tuple) -> bool:
    """End this store's own earlier session if it still holds the writer's lock, and take the lock.

    A connection lost in the network rather than closed (a cable, a NAT's table, a proxy) leaves its
    server session alive until the server's TCP keepalive gives up (hours, by default), holding the
    lock: the tracker would be locked out of its own log. Only that very session (its pid and start
    time, recorded when it took the lock) is ended: another tracker's is never touched.
    """
    pid, started = session
    unsigned = WRITER_LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF  # a bigint key is kept as two oids
    [held] = db.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.granted AND l.objsubid = 1 AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.pid = %s "
        "AND a.backend_start = %s", (unsigned >> 32, unsigned & 0xFFFF_FFFF, pid, started)).fetchone()
    if not held:
        return False
    logger.warning("ending this tracker's earlier session %d on the ledger database, which still holds its lock", pid)
    db.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # waits (up to 5 s) for it to end
    [locked] = db.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)).fetchone()
    return locked


def _redact(url: str) -> str:
    """A database URL without its password, for error messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"postgresql://{info.get('user', '')}@{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
