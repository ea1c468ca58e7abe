"""The verifier's process, kept running: started, restarted whenever it exits unasked, and sent again
every job whose verdict has not come back.

Threat: a verifier that crashes (a bug, memory, a hostile state it tried to load) used to end its
reader thread silently: nothing vested again and jobs piled up. Now a crash costs a restart, the
checks it held are redone, and `swarm status` shows the restarts and the jobs waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from potluck.errors import VerificationError
from potluck.group_process import GroupProcess
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import parse_envelope
from potluck.tracker.credit import Outcome, Verdict
from potluck.tracker.verifier.messages import Job, VerifierReady, VerifierSpec
from potluck.tracker.verifier.verifier import run_verifier

logger = logging.getLogger(__name__)

VERIFIER_START_TIMEOUT = 120.0
VERIFIER_STOP_TIMEOUT = 10.0
RESTART_BACKOFF = 1.0  # seconds before a restart; doubled after each exit without a verdict between, up to:
MAX_RESTART_BACKOFF = 60.0
# Exits with a job outstanding before it is given up: a job that crashes the verifier each time it is
# sent (a hostile state or report) must not stop every other check. Given up, it is unverifiable.
MAX_CRASHES_PER_JOB = 2


@dataclass(frozen=True)
class VerifierHealth:
    running: bool
    restarts: int
    outstanding_jobs: int
    pid: int
    last_exit: str
    verdicts: dict[str, int]  # outcome ("recomputed", "failed", ...) -> verdicts this process delivered


class SupervisedVerifier:
    """Jobs in, events out (`on_event`, called on the event loop); the process behind it may change."""

    def __init__(self, spec: VerifierSpec, on_event: Callable[[object], None]):
        self.spec, self.on_event = spec, on_event
        self.verdicts: Counter[str] = Counter()
        self.outstanding: dict[int, Job] = {}  # grant index -> its job, until its verdict comes back
        self.crashes: dict[int, int] = {}  # grant index -> exits while its job was outstanding
        self.process: GroupProcess | None = None
        self.starting: GroupProcess | None = None  # a process started, not yet ready
        self.jobs = None
        self.reader: threading.Thread | None = None
        self.running = False
        self.stopping = False
        self.restarts, self.last_exit = 0, ""
        self.answered = False  # a verdict came back since the last (re)start
        self.supervisor: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the process; raise `VerificationError` if it does not come up."""
        self.loop = asyncio.get_running_loop()
        self.exited = asyncio.Event()
        await self._launch()
        self.supervisor = asyncio.create_task(self._supervise())

    def submit(self, job: Job) -> None:
        """Send a job (on the event loop); it is kept until its verdict comes back, and sent again after a restart."""
        self.outstanding[job.index] = job
        if self.running:
            self.jobs.put(job)

    def health(self) -> VerifierHealth:
        return VerifierHealth(running=self.running, restarts=self.restarts, outstanding_jobs=len(self.outstanding),
                              pid=(self.process.pid or 0) if self.process else 0, last_exit=self.last_exit,
                              verdicts=dict(self.verdicts))

    async def stop(self) -> None:
        self.stopping = True
        if self.supervisor is not None:
            self.supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.supervisor
        for process in (self.starting, self.process):
            if process is not None:
                await asyncio.to_thread(process.stop, VERIFIER_STOP_TIMEOUT)
        if self.reader is not None:
            await asyncio.to_thread(self.reader.join, 5)

    async def _launch(self) -> None:
        jobs = multiprocessing.get_context("fork").Queue()
        process = self.starting = GroupProcess(run_verifier, self.spec, jobs, name="potluck-verifier").start()
        try:
            event = await asyncio.to_thread(process.next_event, VERIFIER_START_TIMEOUT)
            if not isinstance(event, VerifierReady):
                raise VerificationError("the verifier did not start (is the swarm's bootstrap peer reachable?)")
        except BaseException:  # cancelled by `stop` too: the half-started process goes with us
            await asyncio.to_thread(process.kill)
            _discard(jobs)
            raise
        finally:
            self.starting = None
        self.process, self.jobs = process, jobs
        for job in self.outstanding.values():
            jobs.put(job)
        self.running = True  # from here on, on this loop turn: no job is both re-sent and submitted
        self.reader = threading.Thread(target=self._read, args=(process,), daemon=True, name="verdicts")
        self.reader.start()

    def _read(self, process: GroupProcess) -> None:
        """In a thread: hand every event to the loop, until the process exits (and its last events are read)."""
        while not process.exited():
            self._hand_over(process.next_event(0.5))
        while (event := process.next_event(0.1)) is not None:
            self._hand_over(event)
        self.loop.call_soon_threadsafe(self.exited.set)

    def _hand_over(self, event) -> None:
        if event is not None:
            self.loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event) -> None:
        if isinstance(event, Verdict):
            if self.outstanding.pop(event.index, None) is None:
                return  # the same job's verdict again, from before a restart
            self.crashes.pop(event.index, None)
            self.answered = True
            self.verdicts[event.outcome.value] += 1
        self.on_event(event)

    async def _supervise(self) -> None:
        backoff = RESTART_BACKOFF
        while True:
            await self.exited.wait()
            self.exited.clear()
            if self.stopping:
                return
            if self.answered:  # it got somewhere since its last start: no crash loop
                backoff, self.answered = RESTART_BACKOFF, False
            self.running = False
            process, jobs = self.process, self.jobs
            await asyncio.to_thread(process.kill)  # its DHT and p2pd too; and reap it
            _discard(jobs)
            self.last_exit = _describe(process.exitcode)
            self.restarts += 1
            self._give_up_on_crashing_jobs()
            logger.error("the verifier exited unasked (%s); restarting it in %.0f s with its %d outstanding jobs",
                         self.last_exit, backoff, len(self.outstanding))
            while not self.stopping:
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, MAX_RESTART_BACKOFF)
                try:
                    await self._launch()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a fork that fails (memory, file descriptors) is retried too
                    logger.error("could not restart the verifier: %s", e)
            else:
                return

    def _give_up_on_crashing_jobs(self) -> None:
        for index, job in list(self.outstanding.items()):
            self.crashes[index] = self.crashes.get(index, 0) + 1
            if self.crashes[index] >= MAX_CRASHES_PER_JOB:
                del self.outstanding[index], self.crashes[index]
                self.verdicts[Outcome.UNVERIFIABLE.value] += 1
                self.on_event(Verdict(index=index, account_id=_account_of(job), outcome=Outcome.UNVERIFIABLE,
                                      check="recompute", reason=f"the verifier exited {MAX_CRASHES_PER_JOB} times "
                                                                f"while checking it"))


def _account_of(job: Job) -> str:
    return ContributionReport.FromString(parse_envelope(job.envelope).payload).account_id


def _discard(jobs) -> None:
    """Close a queue whose reader is gone, without waiting for what it still holds to be written."""
    jobs.cancel_join_thread()
    jobs.close()


def _describe(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"
