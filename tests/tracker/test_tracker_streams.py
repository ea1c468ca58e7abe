"""Many reports on one stream are worked on together, yet answered as if one after another."""

import hashlib
import os
import signal
import threading
import time

import grpc
import pytest
from proctree import stat_fields
from swarmkit import submit_reports
from trackerkit import registered

from potluck.entries import decode_entry
from potluck.proto import tracker_pb2 as pb
from potluck.proto.wire import MAX_MESSAGE_REPORT_BYTES, MAX_REPORTS_PER_MESSAGE
from potluck.tlog import verify_receipt

pytestmark = pytest.mark.timeout(60)


def submit(tracker, reports, per_message=64):
    return submit_reports(tracker.stub, reports, per_message=per_message)


@pytest.mark.parametrize("per_message", [1, 7, 64])
def test_a_long_stream_is_answered_in_order_with_replays_and_resends_as_one_by_one(tracker, tmp_path, per_message):
    alice = registered(tracker, tmp_path)
    reports = [alice.report(tracker.manifest, sequence) for sequence in range(1, 151)]
    stale = alice.report(tracker.manifest, 40)  # new bytes, but a sequence already used when it comes
    stream = reports[:100] + [reports[10], stale] + reports[100:]
    acks = submit(tracker, stream, per_message=per_message)

    assert [ack.report_sha256 for ack in acks] == [hashlib.sha256(r).digest() for r in stream]
    resent, replay = acks[100], acks[101]
    assert (resent.verdict, resent.index) == (pb.ReportAck.ACCEPTED, acks[10].index)
    assert (replay.verdict, replay.code) == (pb.ReportAck.REJECTED, "ALREADY_EXISTS")
    accepted = [ack for i, ack in enumerate(acks) if i not in (100, 101)]
    assert [ack.sequence for ack in accepted] == list(range(1, 151))
    for ack, report in zip(accepted, reports, strict=True):
        assert ack.verdict == pb.ReportAck.ACCEPTED
        index, entry, checkpoint = verify_receipt(ack.receipt, tracker.tracker.log_key)
        assert index == ack.index < checkpoint.size and decode_entry(entry).grant.report == report
        assert ack.checkpoint == ack.receipt.split("\n\n", 1)[1]
    grants = [decode_entry(e) for e in tracker.tracker.ledger.entries(0, tracker.tracker.ledger.size)]
    assert sum(e.WhichOneof("kind") == "grant" for e in grants) == 150


def test_the_same_reports_on_concurrent_streams_are_logged_once(tracker, tmp_path):
    bob = registered(tracker, tmp_path)
    reports = [bob.report(tracker.manifest, sequence) for sequence in range(1, 41)]
    answers = [None] * 4

    def stream(i):
        answers[i] = submit(tracker, reports)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    indices = {tuple(ack.index for ack in acks) for acks in answers}
    assert len(indices) == 1 and all(ack.verdict == pb.ReportAck.ACCEPTED for acks in answers for ack in acks)
    entries = [decode_entry(e) for e in tracker.tracker.ledger.entries(0, tracker.tracker.ledger.size)]
    assert sorted(e.grant.report for e in entries if e.WhichOneof("kind") == "grant") == sorted(reports)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda reports: reports[:MAX_REPORTS_PER_MESSAGE] * 2, "more than 64"),
    (lambda reports: [reports[0] + bytes(MAX_MESSAGE_REPORT_BYTES)], "bytes of reports, more than"),
])
def test_an_oversized_message_ends_the_stream_after_the_answers_before_it(tracker, tmp_path, make, reason):
    carol = registered(tracker, tmp_path)
    reports = [carol.report(tracker.manifest, sequence) for sequence in range(1, 71)]
    messages = [pb.SubmitReportsRequest(reports=reports[:3]), pb.SubmitReportsRequest(reports=make(reports[3:])),
                pb.SubmitReportsRequest(reports=reports[3:5])]
    responses = tracker.stub.SubmitReports(iter(messages), timeout=30)
    first = next(responses)
    assert [ack.verdict for ack in first.acks] == [pb.ReportAck.ACCEPTED] * 3
    with pytest.raises(grpc.RpcError) as raised:
        next(responses)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in raised.value.details()
    # Nothing of the oversized message or after it was taken; the tracker serves on.
    entries = [decode_entry(e) for e in tracker.tracker.ledger.entries(0, tracker.tracker.ledger.size)]
    assert sum(e.WhichOneof("kind") == "grant" for e in entries) == 3
    assert [ack.sequence for ack in submit(tracker, reports[3:5])] == [4, 5]


def test_reports_whose_commit_failed_are_taken_again_when_resent(tracker, tmp_path):
    dave = registered(tracker, tmp_path)
    reports = [dave.report(tracker.manifest, sequence) for sequence in range(1, 4)]
    assert submit(tracker, reports[:1])[0].verdict == pb.ReportAck.ACCEPTED
    store = tracker.tracker.ledger.store
    with store.lock:  # the database refuses the next commit, as a full disk or a lost connection would
        store.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON entries "
                         "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(grpc.RpcError) as raised:
        submit(tracker, reports[1:])
    assert "disk trouble" in raised.value.details()
    with store.lock:
        store.db.execute("DROP TRIGGER refuse")
    acks = submit(tracker, reports[1:])
    assert [(ack.verdict, ack.sequence) for ack in acks] == [(pb.ReportAck.ACCEPTED, 2), (pb.ReportAck.ACCEPTED, 3)]


def test_a_killed_report_opening_worker_is_replaced(tracker, tmp_path):
    erin = registered(tracker, tmp_path)
    reports = [erin.report(tracker.manifest, sequence) for sequence in range(1, 4)]
    assert submit(tracker, reports[:1])[0].verdict == pb.ReportAck.ACCEPTED
    for worker in tracker.tracker.service.submissions.opening.workers:
        os.kill(worker.process.pid, signal.SIGKILL)
        while not _dead(worker.process.pid):
            time.sleep(0.01)
    with pytest.raises(grpc.RpcError) as raised:  # the message in the dead worker's hands fails, not the tracker
        submit(tracker, reports[1:2])
    assert "report-opening worker exited" in raised.value.details()
    acks = submit(tracker, reports[1:])
    assert [(ack.verdict, ack.sequence) for ack in acks] == [(pb.ReportAck.ACCEPTED, 2), (pb.ReportAck.ACCEPTED, 3)]


def _dead(pid: int) -> bool:
    """A zombie, or already reaped (the event loop's child watcher may reap it at any moment)."""
    fields = stat_fields(pid)
    return fields is None or fields[0] == "Z"
