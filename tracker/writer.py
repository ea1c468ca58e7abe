"""The ledger's single writer: requests from many streams are committed together (group commit).

Each caller awaits its own entry's index; the writer takes everything queued so far (up to a
batch), appends it in one durable transaction off the event loop, then answers them all. Callers
that want a receipt get it from the same trip off the loop: one checkpoint, signed after the
commit, covers the whole batch, so a report's ack costs no store read and no thread hop of its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.tracker.ledger.ledger import Ledger

logger = logging.getLogger(__name__)

MAX_BATCH = 256


@dataclass(frozen=True)
class Logged:
    """A durably logged entry: its index and, when asked for, a receipt and the checkpoint it proves against.

    `receipt` is None when making it failed after the commit; `Ledger.receipt` then says why.
    """

    index: int
    receipt: str | None = None
    checkpoint: str | None = None


class LedgerWriter:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.queue: asyncio.Queue[tuple[LedgerEntry, bool, asyncio.Future]] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def append(self, entry: LedgerEntry) -> int:
        """Log `entry` durably; return its index (the existing one for a duplicate)."""
        return (await self._submit(entry, receipt=False)).index

    async def append_with_receipt(self, entry: LedgerEntry) -> Logged:
        """Log `entry` durably; return its index with a receipt against a checkpoint signed after the commit."""
        return await self._submit(entry, receipt=True)

    async def _submit(self, entry: LedgerEntry, *, receipt: bool) -> Logged:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((entry, receipt, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                answers = await asyncio.to_thread(self._commit, batch)
            except Exception as e:  # a failed commit answers every waiter; nothing was acknowledged
                logger.exception("ledger append failed")
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for answer, (_, _, future) in zip(answers, batch, strict=True):
                if not future.done():
                    future.set_result(answer)

    def _commit(self, batch: list[tuple[LedgerEntry, bool, asyncio.Future]]) -> list[Logged]:
        """In the writer's thread: append the batch, then make the receipts its callers asked for."""
        indices = self.ledger.append([entry for entry, _, _ in batch])
        wanted = [index for index, (_, receipt, _) in zip(indices, batch, strict=True) if receipt]
        if not wanted:
            return [Logged(index) for index in indices]
        try:
            note, receipts = self.ledger.receipts(wanted)
        except Exception:  # the entries are committed: their callers go on, and ask again for the receipt
            logger.exception("receipts for entries %d.. failed", wanted[0])
            return [Logged(index) for index in indices]
        made = iter(receipts)
        return [Logged(index, next(made), note) if receipt else Logged(index)
                for index, (_, receipt, _) in zip(indices, batch, strict=True)]
