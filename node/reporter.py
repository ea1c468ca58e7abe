"""The reporter: streams the outbox's queued reports to the tracker, with deadlines and backoff.

While the tracker is unreachable the node keeps training and the outbox keeps growing; when it
returns, every queued report is sent again. Resending is safe: the tracker answers the same
report bytes with the same entry, so each report lands in the log exactly once.
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


class Reporter:
    """Sends queued reports and records the tracker's answers in the outbox."""

    def __init__(self, outbox: Outbox, client: TrackerClient, *, log_key: str | None = None, rpc_timeout: float = 30.0,
                 initial_backoff: float = 0.5, max_backoff: float = 30.0, batch_size: int = 64):
        self.outbox, self.tracker, self.log_key = outbox, client.address, log_key
        self.rpc_timeout, self.batch_size = rpc_timeout, batch_size
        self.initial_backoff, self.max_backoff = initial_backoff, max_backoff
        self.stub = TrackerStub(client.channel)  # the stream of reports; the client makes the unary calls
        self.last_error: str | None = None

    def run(self, stop: threading.Event) -> None:
        """Send until `stop` is set, backing off exponentially (with jitter) while sends fail."""
        backoff = self.initial_backoff
        while not stop.is_set():
            if not self.outbox.queued(limit=1):
                self.outbox.wait_for_queued(timeout=0.5)
                continue
            if self.send_once():
                backoff = self.initial_backoff
            else:
                stop.wait(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.max_backoff)

    def flush(self, timeout: float) -> bool:
        """Try to send everything queued within `timeout` seconds; return whether the queue is empty."""
        deadline = time.monotonic() + timeout
        while self.outbox.queued(limit=1):
            if time.monotonic() >= deadline:
                return False
            if not self.send_once(timeout=max(0.1, min(self.rpc_timeout, deadline - time.monotonic()))):
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return True

    def send_once(self, timeout: float | None = None) -> bool:
        """Send one batch of queued reports; return False if the tracker could not be reached."""
        batch, size = {}, 0
        for report in self.outbox.queued(limit=min(self.batch_size, MAX_REPORTS_PER_MESSAGE)):
            size += len(report.envelope)
            if batch and size > MAX_MESSAGE_REPORT_BYTES:
                break
            batch[report.sha256] = report
        request = pb.SubmitReportsRequest(reports=[report.envelope for report in batch.values()])
        try:
            for response in self.stub.SubmitReports(iter([request]), timeout=timeout or self.rpc_timeout):
                for ack in response.acks:
                    report = batch.get(ack.report_sha256)
                    if report is None:
                        logger.warning("tracker acknowledged a report this node did not send in this batch; ignored")
                        continue
                    self._record(report, ack)
        except grpc.RpcError as e:
            self.last_error = f"{e.code().name}: {e.details()}"
            logger.warning("tracker %s unreachable (%s); %d report(s) stay queued", self.tracker, self.last_error,
                           len(self.outbox.queued()))
            return False
        self.last_error = None
        return True

    def _record(self, report: OutboxReport, ack: pb.ReportAck) -> None:
        if ack.verdict == pb.ReportAck.ACCEPTED:
            try:
                self._check_receipt(report, ack)
            except VerificationError as e:
                # Keep it queued: an ack that does not prove our report is no ack at all.
                logger.error("report %d: the tracker's receipt does not prove it was logged (%s)", report.sequence, e)
                return
            self.outbox.mark_acked(report.sha256, ack.index, ack.receipt)
        elif ack.verdict == pb.ReportAck.REJECTED:
            logger.warning("report %d rejected by the tracker: %s", report.sequence, ack.reason)
            self.outbox.mark_rejected(report.sha256, ack.reason or "rejected without a reason")

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
