"""The Tracker gRPC service that volunteers talk to: manifest, registration, reports, data shards.

A report is acknowledged only once its credit grant is durably in the ledger; the ack carries the
entry's index, the checkpoint covering it and a receipt. The same report bytes again get the
same ack and no new entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path

import grpc

from potluck.errors import VerificationError
from potluck.manifest import SignedManifest
from potluck.node.binding import verify_binding
from potluck.proto import tracker_pb2 as pb
from potluck.proto.ledger_pb2 import BindingRecord, LedgerEntry
from potluck.proto.signing import parse_envelope
from potluck.proto.tracker_pb2_grpc import TrackerServicer
from potluck.tracker.accounts import Accounts
from potluck.tracker.intake import Rejected, ReportIntake
from potluck.tracker.ledger.entries import grant_entry, report_dedup_key
from potluck.tracker.ledger.ledger import Ledger
from potluck.tracker.swarm_stats import SwarmStats
from potluck.tracker.verification import Verification
from potluck.tracker.writer import LedgerWriter

logger = logging.getLogger(__name__)

SHARD_CHUNK_BYTES = 1024 * 1024
MAX_REPORTS_IN_FLIGHT = 64  # per stream; a reporter sends its outbox in batches of up to 64


class TrackerService(TrackerServicer):
    def __init__(self, *, manifest: SignedManifest, ledger: Ledger, writer: LedgerWriter, accounts: Accounts,
                 intake: ReportIntake, flops_per_sample: int, verification: Verification,
                 shards: dict[str, Path] | None = None):
        self.manifest, self.ledger, self.writer = manifest, ledger, writer
        self.accounts, self.intake, self.flops_per_sample = accounts, intake, flops_per_sample
        self.shards = shards or {}
        self.verification = verification
        self.in_flight: dict[bytes, asyncio.Future] = {}
        self.stats = SwarmStats()

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
        entry = LedgerEntry(origin=self.manifest.origin, logged_at_ms=_now_ms(), binding=BindingRecord(
            binding=request.binding, account_id=binding.account_id, peer_id=binding.peer_id))
        index = await self.writer.append(entry)
        self.accounts.bind(binding.account_id, binding.peer_id)
        return pb.RegisterResponse(index=index)

    async def SubmitReports(self, request_iterator, context):
        """Answer each report, in the order they came.

        Up to MAX_REPORTS_IN_FLIGHT of a stream's reports are in progress at once (checked in order,
        as they arrive), so a reporter's batch shares group commits instead of each report waiting
        for the commit of the one before it.
        """
        answers: asyncio.Queue = asyncio.Queue()
        slots = asyncio.Semaphore(MAX_REPORTS_IN_FLIGHT)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await slots.acquire()
                    answers.put_nowait(asyncio.ensure_future(self.submit(request.report)))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the stream broke: answer what came before it, then fail as before
                answers.put_nowait(e)
            else:
                answers.put_nowait(None)

        reader, answer = asyncio.ensure_future(read()), None
        try:
            while (answer := await answers.get()) is not None:
                if isinstance(answer, Exception):
                    raise answer
                # Shielded: a client that goes away does not cut a report short between commit and policy.
                yield await asyncio.shield(answer)
                slots.release()
        finally:
            reader.cancel()
            # Reports already taken in finish on their own (an ack is only ever for a logged report);
            # nobody awaits them any more, so their outcome is retrieved here.
            left = [answer] + [answers.get_nowait() for _ in range(answers.qsize())]
            for future in left:
                if isinstance(future, asyncio.Future):
                    future.add_done_callback(_retrieve)

    async def submit(self, envelope: bytes) -> pb.ReportAck:
        """Answer one report; concurrent copies of the same bytes share one answer."""
        key = report_dedup_key(envelope)
        if key in self.in_flight:
            return await asyncio.shield(self.in_flight[key])
        future = asyncio.get_running_loop().create_future()
        self.in_flight[key] = future
        try:
            ack = await self._submit(envelope, key)
            future.set_result(ack)
            return ack
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved here, so an unawaited copy does not warn
            raise
        finally:
            del self.in_flight[key]

    async def _submit(self, envelope: bytes, key: bytes) -> pb.ReportAck:
        digest = hashlib.sha256(envelope).digest()
        # Checked before any await, so a stream's reports are checked in the order they came. A report
        # already in the ledger never passes the check (its sequence is at or below its account's last),
        # so the store is asked only about rejected reports: a logged one still gets its ack again.
        try:
            checked = self.intake.check(envelope)
        except Rejected as r:
            known = await asyncio.to_thread(self.ledger.store.find, [key])
            if key in known:
                return await self._accepted(digest, known[key])
            return pb.ReportAck(report_sha256=digest, verdict=pb.ReportAck.REJECTED, code=r.code, reason=r.reason)
        report, policy = checked.report, self.manifest.manifest.credit_policy
        entry = grant_entry(origin=self.manifest.origin, report=envelope, account_id=report.account_id,
                            num_samples=report.num_samples, flops_per_sample=self.flops_per_sample,
                            policy_version=policy.version, flops_per_credit=policy.flops_per_credit,
                            logged_at_ms=_now_ms())
        logged = await self.writer.append_with_receipt(entry)
        self.stats.record(report)
        await self.verification.on_grant(logged.index, envelope, report, entry.grant.flops)
        if logged.receipt is None:
            return await self._accepted(digest, logged.index, sequence=report.sequence)
        return _ack(digest, logged.index, report.sequence, logged.receipt, logged.checkpoint)

    async def _accepted(self, digest: bytes, index: int, sequence: int | None = None) -> pb.ReportAck:
        note, [receipt] = await asyncio.to_thread(self.ledger.receipts, [index])
        return _ack(digest, index, sequence, receipt, note)

    async def FetchShard(self, request, context):
        path = self.shards.get(request.sha256)
        if path is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dataset shard with sha256 {request.sha256[:64]!r}")
        with path.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, SHARD_CHUNK_BYTES):
                yield pb.ShardChunk(data=chunk)

    async def GetStatus(self, request, context):
        stats = self.stats
        return pb.StatusResponse(
            origin=self.manifest.origin, epoch=stats.epoch, num_peers=len(self.accounts.account_of_peer),
            samples_per_second=stats.samples_per_second(), loss=stats.loss or 0.0, num_reports=stats.num_reports,
            tree_size=self.ledger.size)


def _ack(digest: bytes, index: int, sequence: int | None, receipt: str, checkpoint: str) -> pb.ReportAck:
    return pb.ReportAck(report_sha256=digest, sequence=sequence or 0, verdict=pb.ReportAck.ACCEPTED, index=index,
                        checkpoint=checkpoint, receipt=receipt)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _now_ms() -> int:
    return int(time.time() * 1000)
