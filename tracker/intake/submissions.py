"""How reports become grants: one pump, for every stream, checks them in batches, each stream's in its order.

Streams hand over each message's reports and await their acks. A report whose signer has no
registered peer is refused as it is handed over, before any signature is checked (`ReportIntake.
precheck`): a self-made account costs the tracker a parse. The others wait in their stream's lane
(`Lanes`); the pump takes a message from each waiting stream in turn (up to MAX_PUMP_REPORTS), has
the report-opening workers (`OpeningPool`) check their envelopes' signatures, admits the reports in
order (rate, binding, sequence numbers reserved, no await in between), has the workers check the
admitted reports' attestations, and logs them as grants with one writer call, while it goes on to
the next batch. So many volunteers' single reports share one trip to the workers, one commit and one
checkpoint, as one reporter's queued reports do.

A report is acknowledged only once its grant is durably in the ledger; the same report bytes again,
on any stream at any time, get the same ack and no new entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from potluck.data_credit import DataSplit
from potluck.entries import grant_entry, report_dedup_key
from potluck.manifest import SignedManifest
from potluck.proto import tracker_pb2 as pb
from potluck.proto.report_pb2 import ContributionReport
from potluck.tracker.intake.lanes import Lane, Lanes, Message
from potluck.tracker.intake.opening_pool import OpeningPool
from potluck.tracker.intake.rejected import Rejected
from potluck.tracker.intake.report_intake import ReportIntake
from potluck.tracker.intake.report_opener import Attestations, OpenedReport, ReportOpener, attestation_bytes
from potluck.tracker.ledger import MAX_BATCH, Ledger, LedgerWriter
from potluck.tracker.swarm_stats import SwarmStats

logger = logging.getLogger(__name__)

MAX_PUMP_REPORTS = MAX_BATCH  # reports the pump takes at once: one commit's worth


@dataclass(frozen=True, kw_only=True)
class LoggedGrant:
    """A report the intake logged as a grant: what the next stage (verification) is handed."""

    index: int  # ledger index of the grant
    envelope: bytes  # the report, as signed
    report: ContributionReport
    flops: int
    attestations: Attestations  # its groupmates' attestations, signatures checked


class GrantSink(Protocol):
    """Where logged grants go next: the verifier's side (`potluck.tracker.verifier.Verification`)."""

    async def on_grants(self, grants: list[LoggedGrant]) -> None: ...


class Submissions:
    """Reports on their way from the streams to the ledger. Start with `await start()`, end with `await stop()`."""

    def __init__(self, *, manifest: SignedManifest, ledger: Ledger, writer: LedgerWriter, intake: ReportIntake,
                 verification: GrantSink, stats: SwarmStats, flops_per_sample: int):
        self.manifest, self.ledger, self.writer, self.intake = manifest, ledger, writer, intake
        self.opening: OpeningPool | None = None
        self.verification, self.stats, self.flops_per_sample = verification, stats, flops_per_sample
        self.data_split = DataSplit(manifest.manifest)  # what each grant pays the owners of the text
        self.lanes = Lanes()
        self.in_flight: dict[bytes, asyncio.Future] = {}  # dedup key -> the ack of those bytes, in progress
        self.logging: set[asyncio.Task] = set()
        self.pump: asyncio.Task | None = None

    async def start(self) -> None:
        self.opening = await OpeningPool.start(ReportOpener(self.manifest.origin, self.manifest.manifest_id))
        self.pump = asyncio.create_task(self._pump(), name="report-pump")

    async def stop(self) -> None:
        """Stop taking reports; reports already admitted are still logged and answered."""
        if self.pump is not None:
            self.pump.cancel()
            await asyncio.gather(self.pump, *self.logging, return_exceptions=True)
        _fail(self.lanes.drain(), asyncio.CancelledError("the tracker is stopping"))
        if self.opening is not None:
            await self.opening.close()

    def submit(self, envelopes: list[bytes], lane: Lane) -> asyncio.Future:
        """Hand over a message's reports on a stream's `lane`; the future gives their acks, in order.

        Raises `QueueFull` when the tracker has too much waiting and this lane has some of it.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        refused = [self.intake.precheck(envelope) for envelope in envelopes]
        acks = [None if rejected is None else pb.ReportAck(
            report_sha256=hashlib.sha256(envelope).digest(), verdict=pb.ReportAck.REJECTED, code=rejected.code,
            reason=rejected.reason) for envelope, rejected in zip(envelopes, refused, strict=True)]
        rest = [envelope for envelope, rejected in zip(envelopes, refused, strict=True) if rejected is None]
        if not rest:
            future.set_result(acks)
            return future
        checked = loop.create_future()
        self.lanes.put(lane, (rest, checked))
        checked.add_done_callback(lambda done: _merge(future, acks, done))
        return future

    async def _pump(self) -> None:
        while True:
            messages = await self.lanes.take(MAX_PUMP_REPORTS)
            envelopes = [envelope for reports, _ in messages for envelope in reports]
            try:
                opened = await self.opening.open(envelopes)
                batch = self._admit(envelopes, opened)
                await self._read_attestations(batch)
            except asyncio.CancelledError:
                _fail(messages, asyncio.CancelledError("the tracker is stopping"))
                raise
            except Exception as e:  # an unexpected fault in one batch fails its messages, not the pump
                logger.exception("checking a batch of %d reports failed", len(envelopes))
                _fail(messages, e)
                continue
            task = asyncio.ensure_future(self._log(batch))
            self.logging.add(task)
            task.add_done_callback(self.logging.discard)
            task.add_done_callback(lambda done, messages=messages: _hand_out(messages, done))

    def _admit(self, envelopes: list[bytes], opened: list[OpenedReport | Rejected]) -> _Batch:
        """Admit opened reports in order. A copy of bytes in progress shares that copy's answer.

        A report already in the ledger never passes admission (its sequence is at or below its
        account's last), so the store is asked only about rejected reports: a logged one still gets
        its ack again.

        After a report refused for now (a rate limit, an epoch ahead), its account's later reports in the
        batch are refused for now too: admitted, they would make the earlier one a replay when it is resent.
        """
        batch, held_back = _Batch(envelopes), set()
        try:
            for position, (envelope, report) in enumerate(zip(envelopes, opened, strict=True)):
                key = report_dedup_key(envelope)
                if key in self.in_flight:
                    batch.shared[position] = self.in_flight[key]
                    continue
                self.in_flight[key] = batch.own[position] = asyncio.get_running_loop().create_future()
                batch.keys[position] = key
                if isinstance(report, Rejected):
                    batch.rejected[position] = (None, report)
                    continue
                try:
                    if report.report.account_id in held_back:
                        raise Rejected("RESOURCE_EXHAUSTED", "an earlier report of this account is refused for now; "
                                                             "send them again in order", temporary=True)
                    self.intake.admit(report.report)
                    batch.admitted[position] = report
                except Rejected as r:
                    batch.rejected[position] = (report.report, r)
                    if r.temporary:
                        held_back.add(report.report.account_id)
        except Exception as e:  # a fault of ours: undo what was taken, so that copies and resends are not stuck
            for opened_report in batch.admitted.values():
                self.intake.accounts.release(opened_report.report)
            _fail_unanswered(batch, e)
            self._let_go(batch)
            raise
        return batch

    async def _read_attestations(self, batch: _Batch) -> None:
        """The admitted reports' attestations, their signatures checked: only now, once each report's account
        is bound and within its rate, so that up to 64 signatures per report are not a stranger's for free."""
        try:
            read = await self.opening.read_attestations([attestation_bytes(opened.report)
                                                         for opened in batch.admitted.values()])
        except BaseException as e:  # undo the admission, as `_admit` does, so that resends are taken again
            for opened_report in batch.admitted.values():
                self.intake.accounts.release(opened_report.report)
            _fail_unanswered(batch, e)
            self._let_go(batch)
            raise
        for position, attestations in zip(list(batch.admitted), read, strict=True):
            batch.admitted[position] = OpenedReport(batch.admitted[position].report, attestations)

    def _let_go(self, batch: _Batch) -> None:
        for position in batch.own:
            del self.in_flight[batch.keys[position]]

    async def _log(self, batch: _Batch) -> list[pb.ReportAck | BaseException]:
        """Log a batch's admitted reports as grants; answer every report in it, with an ack or what failed it."""
        try:
            await self._answer(batch)
        except BaseException as e:
            _fail_unanswered(batch, e)
            raise
        finally:
            self._let_go(batch)
        answers: list[pb.ReportAck | BaseException] = []
        for position in range(len(batch.envelopes)):
            future = batch.own.get(position) or batch.shared[position]
            try:  # a copy's answer comes from the batch it was in, which may fail alone
                answers.append(await asyncio.shield(future))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                answers.append(e)
        return answers

    async def _answer(self, batch: _Batch) -> None:
        """Log the admitted reports as grants, then answer every report the batch answers itself."""
        policy, envelopes = self.manifest.manifest.credit_policy, batch.envelopes
        admitted = [(position, opened.report) for position, opened in batch.admitted.items()]
        logged_at_ms = int(time.time() * 1000)
        entries = [grant_entry(origin=self.manifest.origin, report=envelopes[position], account_id=report.account_id,
                               num_samples=report.num_samples, flops_per_sample=self.flops_per_sample,
                               policy_version=policy.version, flops_per_credit=policy.flops_per_credit,
                               logged_at_ms=logged_at_ms, data_share_ppm=policy.data_share_ppm,
                               data=self.data_split.credits(report.num_samples * self.flops_per_sample,
                                                            policy.flops_per_credit),
                               data_windows=self.data_split.total)
                   for position, report in admitted]
        accounts = self.intake.accounts
        try:
            logged = await self.writer.append_many(entries, receipts=True)
        except Exception:  # nothing was logged: the node resends these, and must not meet them as replays
            for _, report in admitted:
                accounts.release(report)
            raise
        grants = list(zip(admitted, entries, logged, strict=True))
        for (_, report), _, done in grants:
            if done.landed_late:
                # A resend of a report whose append failed although it committed: the ledger restored it (its
                # sequence confirmed) and the verifier has it; this admission's reservation is a second one,
                # and confirmed too it would count the report's samples twice.
                accounts.release(report)
            else:
                accounts.confirm(report)
            self.stats.record(report)
        await self.verification.on_grants([
            LoggedGrant(index=done.index, envelope=envelopes[position], report=report, flops=entry.grant.flops,
                        attestations=batch.admitted[position].attestations)
            for (position, report), entry, done in grants if not done.landed_late])
        # position -> (index, sequence, receipt, checkpoint) of each report in the ledger
        found = {position: (done.index, report.sequence, done.receipt, done.checkpoint)
                 for (position, report), _, done in grants}
        if batch.rejected:
            known = await asyncio.to_thread(self.ledger.store.find, [batch.keys[p] for p in batch.rejected])
            for position, (report, _) in batch.rejected.items():
                if (index := known.get(batch.keys[position])) is not None:
                    found[position] = (index, report.sequence if report else 0, None, None)
        if missing := [position for position, (_, _, receipt, _) in found.items() if receipt is None]:
            note, receipts = await asyncio.to_thread(self.ledger.receipts, [found[p][0] for p in missing])
            for position, receipt in zip(missing, receipts, strict=True):
                found[position] = (*found[position][:2], receipt, note)
        for position, future in batch.own.items():
            digest = hashlib.sha256(envelopes[position]).digest()
            if position in found:
                index, sequence, receipt, checkpoint = found[position]
                future.set_result(pb.ReportAck(report_sha256=digest, sequence=sequence, verdict=pb.ReportAck.ACCEPTED,
                                               index=index, checkpoint=checkpoint, receipt=receipt))
            else:
                rejected = batch.rejected[position][1]
                future.set_result(pb.ReportAck(report_sha256=digest, verdict=pb.ReportAck.REJECTED,
                                               code=rejected.code, reason=rejected.reason,
                                               retry=rejected.temporary))


class _Batch:
    """The reports the pump took at once, on their way through: by position, what became of each."""

    def __init__(self, envelopes: list[bytes]):
        self.envelopes = envelopes
        self.keys: dict[int, bytes] = {}  # dedup keys of the reports this batch answers itself
        self.own: dict[int, asyncio.Future] = {}  # their answers, shared with copies that come meanwhile
        self.shared: dict[int, asyncio.Future] = {}  # copies of reports in progress elsewhere: their answers
        self.admitted: dict[int, OpenedReport] = {}
        self.rejected: dict[int, tuple[ContributionReport | None, Rejected]] = {}


def _fail_unanswered(batch: _Batch, error: BaseException) -> None:
    for future in batch.own.values():
        if not future.done():
            future.set_exception(error)
            future.exception()  # retrieved here, so an unawaited copy does not warn


def _hand_out(messages: list[Message], done: asyncio.Future) -> None:
    """Give each message its acks from the batch they were logged in (or the batch's failure)."""
    if done.cancelled() or done.exception() is not None:
        _fail(messages, asyncio.CancelledError() if done.cancelled() else done.exception())
        return
    answers, start = done.result(), 0
    for reports, future in messages:
        mine = answers[start:start + len(reports)]
        start += len(reports)
        if future.done():
            continue
        failed = [answer for answer in mine if isinstance(answer, BaseException)]
        if failed:
            future.set_exception(failed[0])
        else:
            future.set_result(mine)


def _merge(future: asyncio.Future, acks: list[pb.ReportAck | None], checked: asyncio.Future) -> None:
    """A message's acks: those refused as it was handed over, and the pump's for the rest, in order."""
    if future.done():
        return
    if checked.cancelled() or checked.exception() is not None:
        future.set_exception(asyncio.CancelledError() if checked.cancelled() else checked.exception())
        return
    answers = iter(checked.result())
    future.set_result([ack if ack is not None else next(answers) for ack in acks])


def _fail(messages: list[Message], error: BaseException) -> None:
    for _, future in messages:
        if not future.done():
            future.set_exception(error)
