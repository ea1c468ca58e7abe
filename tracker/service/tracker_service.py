"""The Tracker gRPC service that volunteers talk to: manifest, registration, reports, data shards.

Reports come in messages of up to 64 on a stream and go on to `Submissions`, which logs them; each
message is answered with an ack per report (entry index, checkpoint, receipt) once they are durably
in the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from potluck.binding import verify_binding
from potluck.errors import VerificationError
from potluck.manifest import SignedManifest
from potluck.proto import tracker_pb2 as pb
from potluck.proto.ledger_pb2 import BindingRecord, LedgerEntry
from potluck.proto.tracker_pb2_grpc import TrackerServicer
from potluck.proto.wire import MAX_MESSAGE_REPORT_BYTES, MAX_REPORTS_PER_MESSAGE
from potluck.signing import parse_envelope
from potluck.tracker.credit import Accounts
from potluck.tracker.intake import Submissions
from potluck.tracker.intake.lanes import Lane, QueueFull
from potluck.tracker.intake.opening_pool import WorkerDied
from potluck.tracker.ledger import Ledger, LedgerCommitError, LedgerWriter
from potluck.tracker.service.reachability import DialBack, caller_host
from potluck.tracker.service.register_limits import Refused, RegisterLimits, source_of

logger = logging.getLogger(__name__)

SHARD_CHUNK_BYTES = 1024 * 1024
MAX_MESSAGES_IN_FLIGHT = 16  # per stream
# Report bytes of a stream's messages in progress (read, not yet answered): with the server's bound on
# concurrent calls, what bounds the tracker's memory for reports (two full messages each).
MAX_BYTES_IN_FLIGHT = 2 * MAX_MESSAGE_REPORT_BYTES


class TrackerService(TrackerServicer):
    def __init__(self, *, manifest: SignedManifest, ledger: Ledger, writer: LedgerWriter, accounts: Accounts,
                 submissions: Submissions, shards: dict[str, Path] | None = None):
        self.manifest, self.ledger, self.writer, self.accounts = manifest, ledger, writer, accounts
        self.submissions, self.stats = submissions, submissions.stats
        self.shards = shards or {}
        self.dial_back = DialBack()
        self.new_pairs = RegisterLimits(time.monotonic())

    async def GetManifest(self, request, context):
        return pb.GetManifestResponse(signed_manifest=self.manifest.envelope, log_key=self.ledger.verifier_key)

    async def Register(self, request, context):
        try:
            parse_envelope(request.binding)
        except VerificationError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"binding: {e}")
        try:
            binding = verify_binding(request.binding, self.manifest.origin)
        except VerificationError as e:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        owner = self.accounts.account_of_peer.get(binding.peer_id)
        if owner is not None and owner != binding.account_id:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"peer {binding.peer_id} is already bound to account {owner[:12]}")
        if owner is not None:  # the same pair again (a fresh signature, so other bytes): nothing new to log
            return pb.RegisterResponse(index=self.accounts.binding_index[binding.peer_id])
        try:  # a new pair: a durable entry and memory for good (tracker/service/register_limits.py)
            self.new_pairs.take(binding.account_id, caller_host(context.peer()), time.monotonic())
        except Refused as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        entry = LedgerEntry(origin=self.manifest.origin, logged_at_ms=_now_ms(), binding=BindingRecord(
            binding=request.binding, account_id=binding.account_id, peer_id=binding.peer_id))
        try:
            index = await self.writer.append(entry)
        except LedgerCommitError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{e}; register again")
        self.accounts.bind(binding.account_id, binding.peer_id, entry.logged_at_ms / 1000, index)
        return pb.RegisterResponse(index=index)

    async def SubmitReports(self, request_iterator, context):
        """Answer each message of reports with their acks, in the order the messages came.

        Up to MAX_MESSAGES_IN_FLIGHT of a stream's messages (and MAX_BYTES_IN_FLIGHT) are in progress at
        once, so a reporter's batches share commits; `Submissions` checks them in the order they came, in
        a lane of the stream's own (so that no other stream's flood is ahead of them).
        """
        answers: asyncio.Queue = asyncio.Queue()
        # The stream's lane shares its turns with the caller's other streams (tracker/intake/lanes.py).
        slots, lane = asyncio.Semaphore(MAX_MESSAGES_IN_FLIGHT), Lane(source_of(caller_host(context.peer())))
        in_flight = _ByteBudget(MAX_BYTES_IN_FLIGHT)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    envelopes = list(request.reports)
                    if problem := _message_problem(envelopes):
                        answers.put_nowait(_BadMessage(problem))
                        return
                    await slots.acquire()
                    size = sum(map(len, envelopes))
                    await in_flight.take(size)
                    try:
                        future = self.submissions.submit(envelopes, lane)
                    except QueueFull as e:
                        answers.put_nowait(_BadMessage(str(e), grpc.StatusCode.RESOURCE_EXHAUSTED))
                        return
                    future.add_done_callback(lambda _, size=size: in_flight.give(size))
                    answers.put_nowait(future)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the stream broke: answer what came before it, then fail as before
                answers.put_nowait(e)
            else:
                answers.put_nowait(None)

        reader, answer = asyncio.ensure_future(read()), None
        try:
            while (answer := await answers.get()) is not None:
                if isinstance(answer, _BadMessage):
                    await context.abort(answer.code, answer.reason)
                if isinstance(answer, Exception):
                    raise answer
                try:
                    acks = await answer
                except (LedgerCommitError, WorkerDied) as e:
                    # Temporary faults of the tracker's own, said as such (the reporter sends the message
                    # again); any other exception is a fault of ours, logged as an incident (incidents.py).
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{e}; send the message again")
                yield pb.SubmitReportsResponse(acks=acks)
                slots.release()
        finally:
            reader.cancel()
            # Messages already handed over are logged all the same (in the pump's batches); nobody awaits
            # their answers any more, so their outcome is retrieved here.
            left = [answer] + [answers.get_nowait() for _ in range(answers.qsize())]
            for future in left:
                if isinstance(future, asyncio.Future):
                    future.add_done_callback(_retrieve)

    async def FetchShard(self, request, context):
        path = self.shards.get(request.sha256)
        if path is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dataset shard with sha256 {request.sha256[:64]!r}")
        with path.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, SHARD_CHUNK_BYTES):
                yield pb.ShardChunk(data=chunk)

    async def CheckReachability(self, request, context):
        if not 1 <= request.port <= 65535:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"port: must be from 1 to 65535 (got {request.port})")
        host = caller_host(context.peer())
        if host is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"the call came over {context.peer()!r}, not TCP")
        if self.dial_back.busy(host):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "reachability checks are all busy; try again")
        address = f"[{host}]:{request.port}" if ":" in host else f"{host}:{request.port}"
        reason = await self.dial_back.dial(host, request.port)
        return pb.ReachabilityResponse(reachable=reason is None, address=address, reason=reason or "")

    async def GetStatus(self, request, context):
        stats = self.stats
        # The epoch is the newest of any admitted report (restored from the log at start): nodes bound
        # hivemind's view of the swarm's epoch by it (node/progress_bound.py).
        status = pb.StatusResponse(
            origin=self.manifest.origin, epoch=max(stats.epoch, self.accounts.newest_epoch),
            num_peers=len(self.accounts.account_of_peer),
            samples_per_second=stats.samples_per_second(), loss=stats.loss or 0.0, num_reports=stats.num_reports,
            tree_size=self.ledger.size, averaging=[
                pb.EpochAveraging(epoch=epoch, volunteers=volunteers, averaged=averaged, failures=[
                    pb.FailureCount(reason=reason, volunteers=n) for reason, n in failures])
                for epoch, volunteers, averaged, failures in stats.averaging()])
        if request.account_id and (account := self.accounts.find(request.account_id)) is not None:
            status.last_sequence = account.last_sequence  # public: the log holds every logged report
        if stats.spread is not None:
            epoch, num_peers, relative = stats.spread
            status.spread.CopyFrom(pb.ParameterSpread(epoch=epoch, num_peers=num_peers, relative=relative))
        if stats.held_out is not None:
            status.held_out.CopyFrom(pb.HeldOutLoss(epoch=stats.held_out[0], loss=stats.held_out[1]))
        if stats.verifier_health is not None:
            health = stats.verifier_health()
            status.verifier.CopyFrom(pb.VerifierHealth(
                running=health.running, restarts=health.restarts, outstanding_jobs=health.outstanding_jobs,
                pid=health.pid, last_exit=health.last_exit, **{
                    outcome: health.verdicts.get(outcome, 0)
                    for outcome in ("recomputed", "failed", "unverifiable", "passed")}))
        return status


@dataclass(frozen=True)
class _BadMessage:
    reason: str
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT


class _ByteBudget:
    """Bytes a stream may have in progress: `take` (by the stream's one reader) waits until they fit; one
    message always does."""

    def __init__(self, limit: int):
        self.limit, self.used, self.freed = limit, 0, asyncio.Event()

    async def take(self, size: int) -> None:
        while self.used and self.used + size > self.limit:
            self.freed.clear()
            await self.freed.wait()
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size
        self.freed.set()


def _message_problem(envelopes: list[bytes]) -> str | None:
    if len(envelopes) > MAX_REPORTS_PER_MESSAGE:
        return f"a message carries {len(envelopes)} reports, more than {MAX_REPORTS_PER_MESSAGE}"
    size = sum(map(len, envelopes))
    if size > MAX_MESSAGE_REPORT_BYTES:
        return f"a message carries {size} bytes of reports, more than {MAX_MESSAGE_REPORT_BYTES}"
    return None


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _now_ms() -> int:
    return int(time.time() * 1000)
