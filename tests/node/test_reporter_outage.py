"""The outbox and reporter against a real tracker: nothing is lost across a 30-second outage, every report
lands in the log exactly once, and rejections are kept with their reason, not retried."""

import collections
import threading
import time
from dataclasses import dataclass

import pytest
from swarmkit import Volunteer
from trackerkit import RunningTracker

from potluck.entries import decode_entry
from potluck.node.outbox import Outbox
from potluck.node.reporter import Reporter
from potluck.proto import tracker_pb2 as pb
from potluck.proto.wire import MAX_MESSAGE_REPORT_BYTES, MAX_REPORTS_PER_MESSAGE
from potluck.tlog import verify_receipt
from potluck.tracker_client import TrackerClient

OUTAGE_SECONDS = 30.0


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.timeout(180)
def test_every_report_reaches_the_tracker_exactly_once_across_an_outage(tmp_path):
    tracker = RunningTracker(tmp_path)
    manifest, port = tracker.manifest, tracker.port
    volunteer = Volunteer.create(tmp_path)
    tracker.stub.Register(pb.RegisterRequest(binding=volunteer.binding(manifest)), timeout=10)
    outbox = Outbox(tmp_path / "node" / "outbox.sqlite")
    client = TrackerClient(tracker.address)
    reporter = Reporter(outbox, client, log_key=tracker.tracker.log_key, rpc_timeout=5.0, max_backoff=4.0)
    stop = threading.Event()
    thread = threading.Thread(target=reporter.run, args=(stop,), daemon=True)
    thread.start()
    sent = []

    def queue_report():
        sequence = outbox.next_sequence()
        sent.append(volunteer.report(manifest, sequence))
        outbox.put(sequence, sent[-1])

    try:
        for _ in range(5):
            queue_report()
        wait_until(lambda: outbox.counts().acked == 5, 30, "the first acks")

        tracker.stop()
        outage_end = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < outage_end:  # the node keeps training and queuing meanwhile
            queue_report()
            time.sleep(3.0)
        assert outbox.counts().queued >= 9 and reporter.last_error is not None
        tracker = RunningTracker(tmp_path, manifest, port=port)

        wait_until(lambda: outbox.counts().queued == 0, 60, "the queue to drain after the outage")
        counts = outbox.counts()
        assert (counts.acked, counts.rejected) == (len(sent), 0)
        logged = [decode_entry(d).grant.report for d in tracker.tracker.ledger.entries(0, tracker.tracker.ledger.size)]
        times_logged = collections.Counter(r for r in logged if r)
        assert all(times_logged[report] == 1 for report in sent) and len(times_logged) == len(sent)
        for report in outbox.reports("acked"):
            index, entry, _ = verify_receipt(report.receipt, tracker.tracker.log_key)
            assert index == report.entry_index and decode_entry(entry).grant.report == report.envelope
    finally:
        stop.set()
        thread.join(timeout=30)
        client.close()
        outbox.close()
        tracker.stop()


@pytest.mark.timeout(60)
def test_rejected_reports_are_kept_with_the_reason_and_not_retried(tmp_path):
    tracker = RunningTracker(tmp_path)
    try:
        volunteer = Volunteer.create(tmp_path)  # never registers its binding
        outbox = Outbox(tmp_path / "outbox.sqlite")
        outbox.put(1, volunteer.report(tracker.manifest, 1))
        client = TrackerClient(tracker.address)
        reporter = Reporter(outbox, client)
        assert reporter.flush(timeout=20)
        [rejected] = outbox.reports("rejected")
        assert "register the binding first" in rejected.reason
        assert reporter.send_once() and outbox.counts().rejected == 1 and tracker.tracker.ledger.size == 0
        client.close()
        outbox.close()
    finally:
        tracker.stop()


@dataclass
class Flushed:
    reports: list[bytes]
    flushed: bool
    last_error: str | None
    acked: int
    grants: int


def flush_to_a_tracker(tmp_path, make_reports, **reporter_options) -> Flushed:
    """Queue `make_reports(volunteer, manifest)` of a registered volunteer and flush them to a real tracker."""
    tracker = RunningTracker(tmp_path)
    try:
        volunteer = Volunteer.create(tmp_path)
        tracker.stub.Register(pb.RegisterRequest(binding=volunteer.binding(tracker.manifest)), timeout=10)
        outbox = Outbox(tmp_path / "outbox.sqlite")
        reports = make_reports(volunteer, tracker.manifest)
        for sequence, report in enumerate(reports, start=1):
            outbox.put(sequence, report)
        client = TrackerClient(tracker.address)
        reporter = Reporter(outbox, client, log_key=tracker.tracker.log_key, **reporter_options)
        try:
            flushed = reporter.flush(timeout=30)
            entries = [decode_entry(d) for d in tracker.tracker.ledger.entries(0, tracker.tracker.ledger.size)]
            return Flushed(reports, flushed, reporter.last_error, outbox.counts().acked,
                           sum(e.WhichOneof("kind") == "grant" for e in entries))
        finally:
            client.close()
            outbox.close()
    finally:
        tracker.stop()


@pytest.mark.timeout(60)
def test_large_reports_go_in_messages_the_tracker_takes(tmp_path):
    # Windows of 20,000 micro-batches, near the largest report a grant entry holds: ~0.24 MB each,
    # more than one message's 2 MiB together.
    result = flush_to_a_tracker(tmp_path, lambda volunteer, manifest: [
        volunteer.report(manifest, sequence, steps=20_000, batch_size=1) for sequence in range(1, 11)])
    assert sum(map(len, result.reports)) > MAX_MESSAGE_REPORT_BYTES
    assert result.flushed, result.last_error
    assert result.acked == 10 and result.grants == 10


@pytest.mark.timeout(60)
def test_a_reporter_told_to_send_more_keeps_to_the_trackers_reports_per_message(tmp_path):
    result = flush_to_a_tracker(tmp_path, lambda volunteer, manifest: [
        volunteer.report(manifest, sequence) for sequence in range(1, MAX_REPORTS_PER_MESSAGE + 7)], batch_size=100)
    assert result.flushed, result.last_error
    assert result.acked == MAX_REPORTS_PER_MESSAGE + 6


def test_the_outbox_is_durable_across_reopening(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put(1, b"one")
    outbox.put(2, b"two")
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite")
    assert [r.envelope for r in reopened.queued()] == [b"one", b"two"] and reopened.next_sequence() == 3
    reopened.close()
