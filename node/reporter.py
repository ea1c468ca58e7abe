"""The reporter: streams the outbox's queued reports to the tracker, with deadlines and backoff.

While the tracker is unreachable the node keeps training and the outbox keeps growing; when it
returns (the channel turns READY, or the next try within MAX_BACKOFF), every queued report is sent
again. Resending is safe: the tracker answers the same report bytes with the same entry, so each
report lands in the log exactly once.

What the tracker answers decides what becomes of a report: logged (acked), refused for good (set
aside with the reason), or refused for now (`retry`: a rate limit, another manifest, an epoch ahead;
kept queued and sent again after a backoff). A message the tracker refuses as a whole (INVALID_ARGUMENT
on the stream) is split until the one report it refuses is alone: only that one is set aside.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import grpc

from potluck.errors import VerificationError
from potluck.node.outbox import Outbox, OutboxReport
from potluck.proto import tracker_pb2 as pb
from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.tracker_pb2_grpc import TrackerStub
from potluck.proto.wire import MAX_MESSAGE_REPORT_BYTES, MAX_REPORTS_PER_MESSAGE
from potluck.tlog import parse_receipt, verify_receipt
from potluck.tracker_client import TrackerClient

logger = logging.getLogger(__name__)

# Seconds between tries at most, while the tracker is away or refuses for now: a returning tracker is
# sent the queue within this (sooner when the channel reports READY).
MAX_BACKOFF = 4.0


class Reporter:
    """Sends queued reports and records the tracker's answers in the outbox."""

    def __init__(self, outbox: Outbox, client: TrackerClient, *, log_key: str | None = None, rpc_timeout: float = 30.0,
                 initial_backoff: float = 0.25, max_backoff: float = MAX_BACKOFF, batch_size: int = 64):
        self.outbox, self.tracker, self.log_key = outbox, client.address, log_key
        self.rpc_timeout, self.batch_size = rpc_timeout, batch_size
        self.initial_backoff, self.max_backoff = initial_backoff, max_backoff
        self.channel = client.channel
        self.stub = TrackerStub(client.channel)  # the stream of reports; the client makes the unary calls
        self.last_error: str | None = None
        self.ready = threading.Event()  # the channel turned READY since the last failed try
        self.channel.subscribe(self._on_channel_state)

    def close(self) -> None:
        self.channel.unsubscribe(self._on_channel_state)

    def _on_channel_state(self, state: grpc.ChannelConnectivity) -> None:
        if state == grpc.ChannelConnectivity.READY:
            self.ready.set()

    def run(self, stop: threading.Event) -> None:
        """Send until `stop` is set, backing off exponentially (with jitter, up to `max_backoff`) while
        sends make no progress; a channel that turns READY ends the wait at once."""
        backoff = self.initial_backoff
        while not stop.is_set():
            if not self.outbox.queued(limit=1):
                self.outbox.wait_for_queued(timeout=0.5)
                continue
            self.ready.clear()
            if self.send_once():
                backoff = self.initial_backoff
                continue
            deadline = time.monotonic() + backoff * random.uniform(0.5, 1.0)
            while not stop.is_set() and not self.ready.is_set() and (left := deadline - time.monotonic()) > 0:
                self.ready.wait(min(left, 0.1))
            backoff = min(backoff * 2, self.max_backoff)

    def flush(self, timeout: float) -> bool:
        """Try to send everything queued within `timeout` seconds; return whether the queue is empty."""
        deadline, backoff = time.monotonic() + timeout, self.initial_backoff
        while self.outbox.queued(limit=1):
            if time.monotonic() >= deadline:
                return False
            if self.send_once(timeout=max(0.1, min(self.rpc_timeout, deadline - time.monotonic()))):
                backoff = self.initial_backoff
            else:
                time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, self.max_backoff)
        return True

    def send_once(self, timeout: float | None = None) -> bool:
        """Send one batch of queued reports; return whether any was settled (logged or refused for good).

        False: the tracker could not be reached, or refused them all for now. True when none is queued.
        """
        batch, size = {}, 0
        for report in self.outbox.queued(limit=min(self.batch_size, MAX_REPORTS_PER_MESSAGE)):
            size += len(report.envelope)
            if batch and size > MAX_MESSAGE_REPORT_BYTES:
                break
            batch[report.sha256] = report
        if not batch:
            return True  # nothing waits: nothing failed
        settled = self._deliver(batch, timeout or self.rpc_timeout)
        if settled:
            self.last_error = None
        return settled

    def _deliver(self, batch: dict[bytes, OutboxReport], timeout: float) -> bool:
        try:
            return self._send(batch, timeout)
        except grpc.RpcError as e:
            error = f"{e.code().name}: {e.details()}"
            if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                self.last_error = error
                logger.warning("tracker %s unreachable (%s); %d report(s) stay queued", self.tracker, error,
                               len(self.outbox.queued()))
                return False
        # The tracker refused the message as a whole: a report in it is malformed. Halves are sent on
        # their own until the refused one is alone, so a good report is never set aside with it.
        if len(batch) == 1:
            [report] = batch.values()
            logger.error("report %d set aside: the tracker refuses it (%s)", report.sequence, error)
            self.outbox.mark_rejected(report.sha256, f"set aside: the tracker refuses it ({error})")
            return True
        items = list(batch.items())
        settled = [self._deliver(dict(half), timeout) for half in (items[:len(items) // 2], items[len(items) // 2:])]
        return any(settled)

    def _send(self, batch: dict[bytes, OutboxReport], timeout: float) -> bool:
        request = pb.SubmitReportsRequest(reports=[report.envelope for report in batch.values()])
        settled = False
        for response in self.stub.SubmitReports(iter([request]), timeout=timeout):
            for ack in response.acks:
                report = batch.get(ack.report_sha256)
                if report is None:
                    logger.warning("tracker acknowledged a report this node did not send in this batch; ignored")
                    continue
                settled |= self._record(report, ack)
        return settled

    def _record(self, report: OutboxReport, ack: pb.ReportAck) -> bool:
        """Record one ack; return whether it settled the report."""
        if ack.verdict == pb.ReportAck.ACCEPTED:
            try:
                self._check_receipt(report, ack)
            except VerificationError as e:
                # Keep it queued: an ack that does not prove our report is no ack at all.
                logger.error("report %d: the tracker's receipt does not prove it was logged (%s)", report.sequence, e)
                return False
            self.outbox.mark_acked(report.sha256, ack.index, ack.receipt)
            return True
        if ack.verdict == pb.ReportAck.REJECTED and ack.retry:
            self.last_error = f"{ack.code}: {ack.reason}"
            logger.info("report %d refused for now, kept queued: %s", report.sequence, self.last_error)
            return False
        if ack.verdict == pb.ReportAck.REJECTED:
            logger.warning("report %d rejected by the tracker: %s", report.sequence, ack.reason)
            self.outbox.mark_rejected(report.sha256, ack.reason or "rejected without a reason")
            return True
        return False

    def _check_receipt(self, report: OutboxReport, ack: pb.ReportAck) -> None:
        if self.log_key:
            index, entry_bytes, _ = verify_receipt(ack.receipt, self.log_key)
        else:
            receipt = parse_receipt(ack.receipt)
            index, entry_bytes = receipt.index, receipt.entry
        entry = LedgerEntry.FromString(entry_bytes or b"")
        if index != ack.index or entry.grant.report != report.envelope:
            raise VerificationError(f"expected a receipt for report {report.sequence} at index {ack.index}, "
                                    f"got one for index {index} holding other bytes")
