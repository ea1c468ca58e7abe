"""Opening reports: the checks that need no account state (size, encoding, swarm, signature, signer,
and the groupmates' attestations' signatures).

They are most of what a report costs the tracker (an Ed25519 verification each), so they run in
worker processes of their own: the event loop's process is bound by its GIL, and a batch spread
over the workers is checked on as many cores. Each worker is a fresh `python -m` process (not a
fork: the tracker's process has gRPC threads by then) that exits when its input ends, so also when
the tracker dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from potluck.errors import VerificationError
from potluck.node.identity import account_id_of
from potluck.proto.report_pb2 import Attestation, ContributionReport
from potluck.proto.signing import PURPOSE_ATTESTATION, PURPOSE_REPORT, open_envelope, parse_envelope, verify_envelope
from potluck.tracker.ledger.entries import MAX_ENTRY_BYTES

logger = logging.getLogger(__name__)

# A report must fit in the grant entry that logs it, with room for the grant's own fields (~0.3 KB):
# a window of up to ~21k micro-batches (4 bytes of loss each, 64 of sketch per 8).
MAX_REPORT_BYTES = MAX_ENTRY_BYTES - 4096
MAX_WORKERS = 4
WORKER_START_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 5.0


class Rejected(Exception):
    """A report that is not logged; `code` is the gRPC status name that fits."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code, self.reason = code, reason

    def __reduce__(self):  # it crosses from the workers
        return Rejected, (self.code, self.reason)


# What a report's attestations say, signatures checked: (signing account, peer id, account it names)
# for each groupmate, or why one does not verify.
Attesters = tuple[tuple[str, str, str], ...] | str


@dataclass(frozen=True)
class OpenedReport:
    """A report whose signature holds, with its groupmates' attestations read."""

    report: ContributionReport
    attesters: Attesters


def read_attestations(report: ContributionReport) -> Attesters:
    """Each groupmate's attestation as (signing account, peer id, account it names), or why one is bad.

    Whether the peer is bound to that account is for the tracker to say (`check_attestations`).
    """
    read = []
    for envelope in report.averaging.attestations:
        try:
            opened = open_envelope(envelope.SerializeToString(deterministic=True), purpose=PURPOSE_ATTESTATION,
                                   origin=report.origin)
            attestation = Attestation.FromString(opened.payload)
        except Exception as e:  # any malformed attestation is as bad as a forged one
            return f"attestation does not verify: {e}"
        read.append((account_id_of(opened.signer), attestation.peer_id, attestation.account_id))
    return tuple(read)


@dataclass(frozen=True)
class ReportOpener:
    """What a report is opened against: the swarm's origin and manifest."""

    origin: str
    manifest_id: bytes

    def open(self, envelope: bytes) -> ContributionReport:
        """The report a signed envelope carries, if it is well formed and signed by the account it names."""
        origin = self.origin
        if len(envelope) > MAX_REPORT_BYTES:
            raise Rejected("INVALID_ARGUMENT", f"report of {len(envelope)} bytes exceeds {MAX_REPORT_BYTES}")
        try:
            sealed = parse_envelope(envelope)
        except VerificationError as e:
            raise Rejected("INVALID_ARGUMENT", str(e)) from None
        if sealed.purpose != PURPOSE_REPORT:
            raise Rejected("INVALID_ARGUMENT", f"expected purpose {PURPOSE_REPORT!r}, got {sealed.purpose!r}")
        if sealed.origin != origin:
            raise Rejected("FAILED_PRECONDITION", f"report for another swarm: expected origin {origin!r}, "
                                                  f"got {sealed.origin!r}")
        try:
            opened = verify_envelope(sealed, purpose=PURPOSE_REPORT, origin=origin)
        except VerificationError as e:
            raise Rejected("UNAUTHENTICATED", str(e)) from None
        try:
            report = ContributionReport.FromString(opened.payload)
        except DecodeError:
            raise Rejected("INVALID_ARGUMENT", "expected a ContributionReport, got undecodable bytes") from None
        if report.origin != origin:
            raise Rejected("FAILED_PRECONDITION", f"report for another swarm: expected origin {origin!r}, "
                                                  f"got {report.origin!r}")
        if report.manifest_id != self.manifest_id:
            raise Rejected("FAILED_PRECONDITION", f"report for manifest {report.manifest_id.hex()[:16]}…, this swarm "
                                                  f"runs {self.manifest_id.hex()[:16]}…")
        signer = account_id_of(opened.signer)
        if report.account_id != signer:
            raise Rejected("UNAUTHENTICATED", f"report claims account {report.account_id[:12]} but is signed by "
                                              f"{signer[:12]}")
        return report

    def open_all(self, envelopes: list[bytes]) -> list[OpenedReport | Rejected]:
        """Each report opened with its attestations read, or why not (in a worker; they travel back pickled)."""
        opened: list[OpenedReport | Rejected] = []
        for envelope in envelopes:
            try:
                report = self.open(envelope)
                opened.append(OpenedReport(report, read_attestations(report)))
            except Rejected as r:
                opened.append(r)
            except Exception as e:  # bytes that trip a library: this report's problem, not its batch's
                opened.append(Rejected("INVALID_ARGUMENT", f"unreadable report ({type(e).__name__}: {e})"))
        return opened


class OpeningPool:
    """Worker processes that open batches of reports. Create with `await OpeningPool.start(...)`."""

    def __init__(self, opener: ReportOpener, workers: list[_Worker]):
        self.opener, self.workers = opener, workers

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
        """Each report opened, or why not; a batch is shared among the workers."""
        size = -(-len(envelopes) // len(self.workers)) or 1
        chunks = [envelopes[i:i + size] for i in range(0, len(envelopes), size)]
        try:
            results = await asyncio.gather(*(worker.call(chunk)
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


class WorkerDied(Exception):
    pass


class _Worker:
    """`python -m potluck.tracker.opening`: pickled frames on its stdin and stdout, one request at a time."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process, self.lock = process, asyncio.Lock()

    @classmethod
    async def start(cls, opener: ReportOpener) -> _Worker:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "potluck.tracker.opening",
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
                _write_frame(self.process.stdin, request)
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


def _write_frame(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(4, "big") + data)


def _serve() -> None:
    """The worker: the opener first, then batches of envelopes, each answered; ends at end of input."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    opener = None
    while header := stdin.read(4):
        request = pickle.loads(stdin.read(int.from_bytes(header, "big")))
        if opener is None:
            opener, answer = request, None
        else:
            answer = opener.open_all(request)
        _write_frame(stdout, answer)
        stdout.flush()


if __name__ == "__main__":
    _serve()
