"""The ledger's single writer: requests from many streams are committed together (group commit).

Each caller awaits its own entry's index; the writer takes everything queued so far (up to a
batch), appends it in one durable transaction off the event loop, then answers them all.
"""

from __future__ import annotations

import asyncio
import logging

from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.tracker.ledger.ledger import Ledger

logger = logging.getLogger(__name__)

MAX_BATCH = 256


class LedgerWriter:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.queue: asyncio.Queue[tuple[LedgerEntry, asyncio.Future]] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def append(self, entry: LedgerEntry) -> int:
        """Log `entry` durably; return its index (the existing one for a duplicate)."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((entry, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            entries = [entry for entry, _ in batch]
            try:
                indices = await asyncio.to_thread(self.ledger.append, entries)
            except Exception as e:  # a failed commit answers every waiter; nothing was acknowledged
                logger.exception("ledger append failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for index, (_, future) in zip(indices, batch, strict=True):
                if not future.done():
                    future.set_result(index)
