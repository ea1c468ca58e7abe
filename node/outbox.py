"""The node's durable outbox: signed reports wait here until the tracker has logged them.

A report enters the outbox (committed, fsynced) before anything tries to send it, and leaves
the queue only when the tracker acknowledges it as durably logged; the acknowledgement's
index and receipt stay with it, so the volunteer can prove every credited window. A report
the tracker rejects for good is kept, with the reason, for the volunteer to see; it is not resent.
So is one too large for the tracker ever to take: it is set aside as it is put, never sent.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from potluck.durable_sqlite import open_durable
from potluck.proto.wire import MAX_REPORT_BYTES

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    sequence INTEGER PRIMARY KEY,
    envelope BLOB NOT NULL,
    sha256 BLOB NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'acked', 'rejected')),
    queued_at REAL NOT NULL,
    entry_index INTEGER,
    receipt TEXT,
    reason TEXT
);
"""


@dataclass(frozen=True)
class OutboxReport:
    sequence: int
    envelope: bytes
    sha256: bytes
    state: str
    entry_index: int | None
    receipt: str | None
    reason: str | None


@dataclass(frozen=True)
class OutboxCounts:
    queued: int
    acked: int
    rejected: int


class Outbox:
    """A SQLite file (WAL, synchronous=FULL) shared by the node's reporter and its training loop."""

    def __init__(self, path: Path):
        self.db = open_durable(path, SCHEMA, "the outbox")
        self.path = path
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def next_sequence(self, above: int = 0) -> int:
        """The next report's sequence: above every report here and above `above` (what the tracker logged
        last for this account, for an outbox that was lost and begins again empty)."""
        with self.lock:
            (last,) = self.db.execute("SELECT COALESCE(MAX(sequence), 0) FROM reports").fetchone()
            return max(last, above) + 1

    def put(self, sequence: int, envelope: bytes) -> None:
        """Durably queue a signed report; returns once it is on disk.

        A report larger than the tracker takes (MAX_REPORT_BYTES) is kept, set aside with the reason, not
        queued: sent, it would be refused every time, and before this check it held up every report after it.
        """
        state, reason = "queued", None
        if len(envelope) > MAX_REPORT_BYTES:
            state, reason = "rejected", f"not sent: a report of {len(envelope)} bytes, more than the tracker " \
                                        f"takes ({MAX_REPORT_BYTES})"
        with self.changed:
            self.db.execute(
                "INSERT INTO reports (sequence, envelope, sha256, state, queued_at, reason) VALUES (?, ?, ?, ?, ?, ?)",
                (sequence, envelope, hashlib.sha256(envelope).digest(), state, time.time(), reason),
            )
            self.changed.notify_all()

    def queued(self, limit: int = 256) -> list[OutboxReport]:
        with self.lock:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM reports WHERE state = 'queued' ORDER BY sequence LIMIT ?",
                                   (limit,))
            return [OutboxReport(*row) for row in rows]

    def wait_for_queued(self, timeout: float) -> bool:
        """Block until a report is queued (or `timeout` passes); return whether one is."""
        with self.changed:
            return self.changed.wait_for(lambda: self._count("queued") > 0, timeout)

    def mark_acked(self, sha256: bytes, entry_index: int, receipt: str) -> None:
        with self.changed:
            self.db.execute("UPDATE reports SET state = 'acked', entry_index = ?, receipt = ?, reason = NULL "
                            "WHERE sha256 = ?", (entry_index, receipt, sha256))
            self.changed.notify_all()

    def mark_rejected(self, sha256: bytes, reason: str) -> None:
        with self.changed:
            self.db.execute("UPDATE reports SET state = 'rejected', reason = ? WHERE sha256 = ? AND state = 'queued'",
                            (reason, sha256))
            self.changed.notify_all()

    def reports(self, state: str | None = None) -> list[OutboxReport]:
        with self.lock:
            where, args = ("WHERE state = ?", (state,)) if state else ("", ())
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM reports {where} ORDER BY sequence", args)
            return [OutboxReport(*row) for row in rows]

    def counts(self) -> OutboxCounts:
        with self.lock:
            return OutboxCounts(self._count("queued"), self._count("acked"), self._count("rejected"))

    def _count(self, state: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM reports WHERE state = ?", (state,)).fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self.db.close()


_COLUMNS = "sequence, envelope, sha256, state, entry_index, receipt, reason"
