"""What the reporter does with each kind of refusal, against a real tracker and a real outbox: a malformed
report is set aside alone, temporary refusals keep reports queued until they are logged, a lost outbox
numbers its reports above the tracker's last, and a returning tracker is sent the queue within seconds.
Each test ends with every honest report read back from the ledger, logged exactly once."""

import collections
import hashlib
import threading
import time

import pytest
from swarmkit import Volunteer
from trackerkit import RunningTracker, registered

from potluck.entries import decode_entry
from potluck.identity import AccountKey
from potluck.manifest import sign_manifest, verify_manifest
from potluck.node.outbox import Outbox
from potluck.node.reporter import Reporter
from potluck.proto.wire import MAX_MESSAGE_REPORT_BYTES, MAX_REPORT_BYTES
from potluck.tracker.intake.report_intake import RATE_BURST
from potluck.tracker.swarm.swarm_config import parse_swarm_config, render_swarm_template
from potluck.tracker_client import TrackerClient

# Seconds from the tracker's return to an empty queue: the reporter's longest backoff (MAX_BACKOFF, 4 s)
# and a send, with room for a busy machine.
DRAINED_WITHIN = 7.0


def assert_logged_once(tracker: RunningTracker, honest: list[bytes]) -> None:
    """Every honest report is in the ledger exactly once, and nothing else is."""
    ledger = tracker.tracker.ledger
    logged = collections.Counter(g for g in (decode_entry(d).grant.report for d in ledger.entries(0, ledger.size)) if g)
    assert logged == collections.Counter(honest), (f"{sum(logged[r] == 1 for r in honest)} of {len(honest)} honest "
                                                   f"reports logged once; {len(logged)} distinct logged")


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Node:
    """A volunteer's outbox and reporter, on a thread of its own while `running`."""

    def __init__(self, tracker: RunningTracker, outbox_path, volunteer: Volunteer, **options):
        self.outbox, self.volunteer = Outbox(outbox_path), volunteer
        self.client = TrackerClient(tracker.address)
        self.reporter = Reporter(self.outbox, self.client, log_key=tracker.tracker.log_key, rpc_timeout=5.0, **options)
        self.stop, self.thread = threading.Event(), None

    def queue(self, manifest, count: int, **report_options) -> list[bytes]:
        reports = []
        for _ in range(count):
            sequence = self.outbox.next_sequence()
            reports.append(self.volunteer.report(manifest, sequence, **report_options))
            self.outbox.put(sequence, reports[-1])
        return reports

    def start(self) -> None:
        self.thread = threading.Thread(target=self.reporter.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.reporter.close()
        self.client.close()
        self.outbox.close()


class Swarm:
    """The tracker now running (tests restart it) and one registered volunteer's node."""

    def __init__(self, tmp_path, manifest=None):
        self.tmp_path, self.tracker = tmp_path, RunningTracker(tmp_path, manifest)
        self.volunteer = registered(self.tracker, tmp_path)
        self.node = Node(self.tracker, tmp_path / "outbox.sqlite", self.volunteer)

    def restart_tracker(self, manifest) -> RunningTracker:
        """Stop the tracker and start one on the same port and state dir, running `manifest`."""
        port = self.tracker.port
        self.tracker.stop()
        self.tracker = RunningTracker(self.tmp_path, manifest, port=port)
        return self.tracker

    def close(self) -> None:
        self.node.close()
        self.tracker.stop()


@pytest.fixture
def swarm(tmp_path):
    swarm = Swarm(tmp_path)
    yield swarm
    swarm.close()


@pytest.mark.timeout(60)
def test_a_report_the_tracker_refuses_as_a_message_is_set_aside_alone_and_the_rest_flow_on(swarm):
    # Threat: one report over the 2 MiB of a message (a groupmate's gather payload carried into it, or an
    # outbox from before the node checked sizes) made the tracker refuse the whole stream, and the reporter
    # resent that same batch forever: no later report was ever logged.
    node, manifest = swarm.node, swarm.tracker.manifest
    honest = node.queue(manifest, 3)
    huge = b"\x00" * (MAX_MESSAGE_REPORT_BYTES + 1)
    with node.outbox.lock:  # as an older node's outbox holds it: put() now sets such a report aside itself
        node.outbox.db.execute("INSERT INTO reports (sequence, envelope, sha256, state, queued_at) "
                               "VALUES (4, ?, ?, 'queued', 0)", (huge, hashlib.sha256(huge).digest()))
    honest += node.queue(manifest, 3)
    assert node.reporter.flush(timeout=20), node.reporter.last_error
    [aside] = node.outbox.reports("rejected")
    assert aside.sequence == 4 and "INVALID_ARGUMENT" in aside.reason and "set aside" in aside.reason
    assert node.outbox.counts().acked == 6
    assert_logged_once(swarm.tracker, honest)


@pytest.mark.timeout(60)
def test_a_report_too_large_for_the_tracker_is_set_aside_as_it_is_queued(swarm):
    # Threat: a report no tracker takes (over MAX_REPORT_BYTES) sent again and again, ahead of every other.
    node, manifest = swarm.node, swarm.tracker.manifest
    honest = node.queue(manifest, 2)
    node.outbox.put(3, b"\x01" * (MAX_REPORT_BYTES + 1))
    honest += node.queue(manifest, 2)
    [aside] = node.outbox.reports("rejected")
    assert aside.sequence == 3 and "more than the tracker takes" in aside.reason
    assert node.reporter.flush(timeout=20), node.reporter.last_error
    assert node.outbox.counts().acked == 4
    assert_logged_once(swarm.tracker, honest)


@pytest.mark.timeout(90)
def test_reports_over_the_rate_limit_after_an_outage_stay_queued_until_logged(swarm):
    # Threat: an outage leaves more than RATE_BURST reports queued; the tracker refuses the excess with
    # RESOURCE_EXHAUSTED and the reporter took that as final: honest windows lost, and the next report's
    # sequence jumped over them, so a resend would be a replay.
    node = swarm.node
    honest = node.queue(swarm.tracker.manifest, RATE_BURST + 6)
    assert node.reporter.flush(timeout=45), node.reporter.last_error
    assert node.outbox.counts().rejected == 0 and node.outbox.counts().acked == len(honest)
    assert_logged_once(swarm.tracker, honest)


@pytest.mark.timeout(90)
def test_reports_for_a_manifest_the_tracker_does_not_run_now_are_kept_until_it_runs_again(tmp_path):
    # Threat: a lead restarts the tracker with another manifest (by mistake, or for a while); the queued
    # reports, signed against the manifest they were trained under, were rejected for good.
    lead, config = AccountKey.generate(), parse_swarm_config(render_swarm_template("test"))
    first = verify_manifest(sign_manifest(config, lead))
    swarm = Swarm(tmp_path, first)
    try:
        node = swarm.node
        honest = node.queue(first, 3)
        assert node.reporter.flush(timeout=20)
        honest += node.queue(first, 3)
        config.hivemind.target_batch_size += 1  # the lead edited swarm.toml: another manifest id, the same swarm
        other = verify_manifest(sign_manifest(config, lead))
        assert other.origin == first.origin and other.manifest_id != first.manifest_id
        swarm.restart_tracker(other)
        assert not node.reporter.flush(timeout=3)
        counts = node.outbox.counts()
        assert (counts.queued, counts.rejected) == (3, 0) and "FAILED_PRECONDITION" in node.reporter.last_error
        swarm.restart_tracker(first)
        assert node.reporter.flush(timeout=20), node.reporter.last_error
        assert node.outbox.counts().acked == 6
        assert_logged_once(swarm.tracker, honest)
    finally:
        swarm.close()


@pytest.mark.timeout(60)
def test_a_node_whose_outbox_was_lost_numbers_its_reports_above_the_trackers_last(swarm, tmp_path):
    # Threat: the state dir lost, the new outbox numbered reports from 1 again; the tracker refused each as
    # a replay of sequences it already logged, for as many windows as the account had sent.
    honest = swarm.node.queue(swarm.tracker.manifest, 4)
    assert swarm.node.reporter.flush(timeout=20)
    swarm.node.close()
    node = swarm.node = Node(swarm.tracker, tmp_path / "new" / "outbox.sqlite", swarm.volunteer)
    last = node.client.status(swarm.volunteer.account.account_id).last_sequence
    assert last == 4 and node.outbox.next_sequence() == 1  # without the tracker's answer: a replay
    for _ in range(3):
        sequence = node.outbox.next_sequence(above=last)
        honest.append(swarm.volunteer.report(swarm.tracker.manifest, sequence))
        node.outbox.put(sequence, honest[-1])
    assert node.reporter.flush(timeout=20), node.reporter.last_error
    assert [r.sequence for r in node.outbox.reports("acked")] == [5, 6, 7]
    assert node.client.status("no such account").last_sequence == 0
    assert_logged_once(swarm.tracker, honest)


@pytest.mark.timeout(90)
def test_the_queue_drains_within_seconds_of_the_trackers_return(swarm):
    # Threat: after an outage of a quarter minute the reporter's backoff (up to 30 s) and gRPC's own
    # reconnect backoff (up to 120 s) left credit waiting long after the tracker was back.
    node, manifest = swarm.node, swarm.tracker.manifest
    node.start()
    honest = node.queue(manifest, 2)
    wait_until(lambda: node.outbox.counts().acked == 2, 20, "the first acks")
    swarm.tracker.stop()
    outage_end = time.monotonic() + 15.0
    while time.monotonic() < outage_end:
        honest += node.queue(manifest, 1)
        time.sleep(1.0)
    swarm.restart_tracker(manifest)
    back = time.monotonic()
    wait_until(lambda: node.outbox.counts().queued == 0, 30, "the queue to drain")
    drained_in = time.monotonic() - back
    print(f"queue of {len(honest) - 2} drained {drained_in:.2f} s after the tracker returned")
    assert drained_in < DRAINED_WITHIN
    assert_logged_once(swarm.tracker, honest)
