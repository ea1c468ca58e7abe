"""The report-opening workers: `ReportOpener.open_all` and `read_all` run in processes of their own.

Opening is most of what a report costs the tracker (an Ed25519 verification each), and the event
loop's process is bound by its GIL, so a batch spread over the workers is checked on as many cores.
Each worker is a fresh `python -m` process (not a fork: the tracker's process has gRPC threads by
then) that exits when its input ends, so also when the tracker dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys

from potluck.errors import PotluckError
from potluck.tracker.intake.rejected import Rejected
from potluck.tracker.intake.report_opener import Attestations, OpenedReport, ReportOpener

logger = logging.getLogger(__name__)

MAX_WORKERS = 4
WORKER_START_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 5.0


class OpeningPool:
    """Worker processes that open batches of reports. Create with `await OpeningPool.start(...)`."""

    def __init__(self, opener: ReportOpener, workers: list[_Worker]):
        self.opener, self.workers = opener, workers
        self.attestations_read = 0  # attestation signatures sent to be checked: only admitted reports' (a metric)

    @classmethod
    async def start(cls, opener: ReportOpener, count: int | None = None) -> OpeningPool:
        if count is None:
            count = max(1, min(MAX_WORKERS, (os.cpu_count() or 2) - 1))
        workers = []
        try:
            for _ in range(count):
                workers.append(await _Worker.start(opener))
        except BaseException:
            for worker in workers:
                await worker.close()
            raise
        return cls(opener, workers)

    async def open(self, envelopes: list[bytes]) -> list[OpenedReport | Rejected]:
        """Each report opened (its attestations not read), or why not; a batch is shared among the workers."""
        return await self._share("open", envelopes)

    async def read_attestations(self, reports: list[list[bytes]]) -> list[Attestations]:
        """Each admitted report's attestations (`attestation_bytes`), their signatures checked."""
        if not any(reports):
            return [Attestations() for _ in reports]
        self.attestations_read += sum(map(len, reports))
        return await self._share("attestations", reports)

    async def _share(self, kind: str, items: list) -> list:
        size = -(-len(items) // len(self.workers)) or 1
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        try:
            results = await asyncio.gather(*(worker.call((kind, chunk))
                                             for worker, chunk in zip(self.workers, chunks, strict=False)))
        except WorkerDied:  # killed from outside: replace it, and this batch fails (its reports are resent)
            for index, worker in enumerate(self.workers):
                if worker.process.returncode is not None:
                    logger.error("a report-opening worker exited (%s); starting another", worker.process.returncode)
                    self.workers[index] = await _Worker.start(self.opener)
            raise
        return [opened for result in results for opened in result]

    async def close(self) -> None:
        for worker in self.workers:
            await worker.close()


class WorkerDied(PotluckError):
    """A report-opening worker exited under a batch (killed from outside)."""


class _Worker:
    """`python -m potluck.tracker.intake.opening_worker`: pickled frames both ways, one request at a time."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process, self.lock = process, asyncio.Lock()

    @classmethod
    async def start(cls, opener: ReportOpener) -> _Worker:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "potluck.tracker.intake.opening_worker",
                                                       stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        worker = cls(process)
        try:
            await asyncio.wait_for(worker.call(opener), WORKER_START_TIMEOUT)  # answered once it is ready
        except BaseException:
            await worker.close()
            raise
        return worker

    async def call(self, request):
        async with self.lock:
            try:
                write_frame(self.process.stdin, request)
                await self.process.stdin.drain()
                size = int.from_bytes(await self.process.stdout.readexactly(4), "big")
                return pickle.loads(await self.process.stdout.readexactly(size))
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                await self.process.wait()
                raise WorkerDied(f"a report-opening worker exited ({self.process.returncode})") from e

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.stdin.close()  # end of requests: it exits
            try:
                await asyncio.wait_for(self.process.wait(), WORKER_STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def write_frame(stream, obj) -> None:
    """One pickled frame: its length in 4 bytes, then the pickle (both ways between pool and worker)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(4, "big") + data)
