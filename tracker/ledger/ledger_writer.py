"""The ledger's single writer: requests from many streams are committed together (group commit).

Each caller awaits its own entries' indices; the writer takes everything queued so far (up to a
batch), appends it in one durable transaction off the event loop, then answers them all. Callers
that want a receipt get it from the same trip off the loop: one checkpoint, signed after the
commit, covers the whole batch, so a report's ack costs no store read and no thread hop of its own.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace

from potluck.errors import PotluckError
from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.tracker.batches import take_batch
from potluck.tracker.ledger.ledger import Ledger
from potluck.tracker.ledger.store import LedgerUnavailableError
from potluck.tracker.ledger.writer_lock import LedgerLockedError

logger = logging.getLogger(__name__)

MAX_BATCH = 256
MAX_REASON_CHARS = 160


class LedgerCommitError(PotluckError):
    """The store refused or lost a commit: nothing of it was acknowledged, and a caller may send it again.

    Its message is what a client may be told (`_commit_error`), never the exception's class or a traceback
    (those are logged here).
    """


@dataclass(frozen=True)
class Logged:
    """A durably logged entry: its index and, when asked for, a receipt and the checkpoint it proves against.

    `receipt` is None when making it failed after the commit; `Ledger.receipt` then says why.
    """

    index: int
    receipt: str | None = None
    checkpoint: str | None = None
    # Logged by an earlier append that failed, found committed by this one (`LedgerWriter.on_landed_late`
    # has had it): whatever the caller does once an entry is logged was done for it already.
    landed_late: bool = False


class LedgerWriter:
    """`on_landed_late`, on the event loop, hears of entries whose append failed but which were found
    committed by a later append (`Ledger.take_landed_late`): what their append would have set going."""

    def __init__(self, ledger: Ledger, on_landed_late: Callable[[list[tuple[int, LedgerEntry]]], None] | None = None):
        self.ledger, self.on_landed_late = ledger, on_landed_late
        self.queue: asyncio.Queue[tuple[list[LedgerEntry], bool, asyncio.Future]] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def append(self, entry: LedgerEntry) -> int:
        """Log `entry` durably; return its index (the existing one for a duplicate)."""
        [logged] = await self.append_many([entry])
        return logged.index

    async def append_many(self, entries: list[LedgerEntry], *, receipts: bool = False) -> list[Logged]:
        """Log `entries` durably, in order, in one commit; with `receipts`, each with a receipt against a
        checkpoint signed after the commit."""
        if not entries:
            return []
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((entries, receipts, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = await take_batch(self.queue, MAX_BATCH, size=lambda request: len(request[0]))
            try:
                answers = await asyncio.to_thread(self._commit, batch)
            except Exception as e:  # a failed commit answers every waiter; nothing was acknowledged
                logger.exception("ledger append failed")
                error = _commit_error(e)
                self._hand_over_landed_late()  # found by this batch's settling, even if the batch then failed
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            # Before the answers, which say which of their entries landed late (a resend of a report whose
            # append failed although it committed): those are restored and handed over already.
            late = self._hand_over_landed_late()
            for answer, (_, _, future) in zip(answers, batch, strict=True):
                if not future.done():
                    future.set_result([replace(logged, landed_late=True) if logged.index in late else logged
                                       for logged in answer])

    def _hand_over_landed_late(self) -> set[int]:
        late = self.ledger.take_landed_late()
        if late and self.on_landed_late is not None:
            try:
                self.on_landed_late(late)
            except Exception:  # the writer goes on: its other callers must still be answered
                logger.exception("handling entries %d.. that landed late failed", late[0][0])
        return {index for index, _ in late}

    def _commit(self, batch: list[tuple[list[LedgerEntry], bool, asyncio.Future]]) -> list[list[Logged]]:
        """In the writer's thread: append the batch, then make the receipts its callers asked for."""
        indices = self.ledger.append([entry for entries, _, _ in batch for entry in entries])
        spans, start = [], 0
        for entries, receipts, _ in batch:
            spans.append((indices[start:start + len(entries)], receipts))
            start += len(entries)
        wanted = [index for span, receipts in spans if receipts for index in span]
        made: dict[int, tuple[str, str]] = {}
        if wanted:
            try:
                note, receipts = self.ledger.receipts(wanted)
                made = {index: (receipt, note) for index, receipt in zip(wanted, receipts, strict=True)}
            except Exception:  # the entries are committed: their callers go on, and ask again for the receipt
                logger.exception("receipts for entries %d.. failed", wanted[0])
        return [[Logged(index, *made.get(index, (None, None))) if receipts else Logged(index) for index in span]
                for span, receipts in spans]


def _commit_error(error: Exception) -> Exception:
    """A database's refusal (a full disk, a lost connection, a trigger) as a `LedgerCommitError` whose reason
    a client may read; a fault of ours (any other exception) as it is, for the server to log as an incident.

    SQLite's own messages name the failure ("database or disk is full"); PostgreSQL's can name hosts and
    files, so only its SQLSTATE code is passed on; a lost database, by a fixed line (its URL stays here).
    """
    if isinstance(error, sqlite3.Error):
        reason = (str(error).strip().splitlines() or ["database error"])[0][:MAX_REASON_CHARS]
    elif type(error).__module__.split(".")[0] == "psycopg":
        reason = f"database error, SQLSTATE {getattr(error, 'sqlstate', None) or 'unknown'}"
    elif isinstance(error, LedgerUnavailableError):
        reason = "the ledger database is unreachable"
    elif isinstance(error, LedgerLockedError):  # reconnected, but the writer's lock is not ours again yet
        reason = "the ledger database is held by another session"
    else:
        return error
    commit_error = LedgerCommitError(f"the ledger could not commit ({reason})")
    commit_error.__cause__ = error
    return commit_error
