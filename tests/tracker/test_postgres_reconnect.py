"""A tracker on PostgreSQL rides out the database: a restart under it, and a COMMIT cut off mid-flight.

The database is a PostgreSQL server of the test's own (tests/pgserver.py), and the cut a TCP proxy
between the tracker and it (tests/pgproxy.py) that drops the connection at the COMMIT of an insert:
before the server sees it (nothing landed) or after the server committed (it landed, the tracker
never heard). Each ends with the store and the tracker's tree agreeing, every report logged exactly
once at the index its ack names, and `potluck audit verify` clean. Without the store's reconnect, a
database restart wedges the tracker; without `Ledger._settle`, an uncertain COMMIT leaves the tree
out of step with the store; without `Ledger.take_landed_late`, a grant whose COMMIT landed unseen is
credited but never checked.
"""

import collections
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from pgproxy import CommitCutter
from pgserver import PgServer, postgres_bin
from swarmkit import submit_reports
from trackerkit import RunningTracker, registered

from potluck.entries import decode_entry
from potluck.proto import tracker_pb2 as pb
from potluck.tlog import MerkleTree
from potluck.tracker.ledger import postgres_store
from potluck.tracker.swarm.local_swarm import free_port

pytestmark = pytest.mark.timeout(60)
POTLUCK = str(Path(sys.executable).parent / "potluck")


@pytest.fixture
def pg():
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    server = PgServer(free_port())
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def cutter(pg):
    proxy = CommitCutter(pg.port)
    yield proxy
    proxy.close()


def assert_consistent(tracker: RunningTracker, sent: list[bytes], acks: dict[bytes, int]) -> None:
    """The tree is the store's; each report sent is logged exactly once, at its ack's index; audit clean."""
    ledger = tracker.tracker.ledger
    hashes = ledger.store.leaf_hashes()
    assert len(hashes) == ledger.size and MerkleTree.from_leaf_hashes(hashes).root() == ledger.tree.root()
    entries = [decode_entry(data, index) for index, data in enumerate(ledger.store.entries(0, ledger.size))]
    logged = collections.Counter(e.grant.report for e in entries if e.WhichOneof("kind") == "grant")
    assert logged == collections.Counter(sent), "a report logged twice, lost, or not sent by the test"
    for report, index in acks.items():
        assert entries[index].grant.report == report
    audit = subprocess.run([POTLUCK, "audit", "verify", "--tracker", tracker.address, "--log-key",
                            tracker.tracker.log_key, "--timeout", "20"], capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def accepted(tracker: RunningTracker, reports: list[bytes]) -> dict[bytes, int]:
    acks = submit_reports(tracker.stub, reports)
    assert [ack.verdict for ack in acks] == [pb.ReportAck.ACCEPTED] * len(reports), acks
    return {report: ack.index for report, ack in zip(reports, acks, strict=True)}


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_database_restarted_under_a_running_tracker(tmp_path, pg, mode):
    tracker = RunningTracker(tmp_path, db=pg.url)
    try:
        volunteer = registered(tracker, tmp_path)
        sent = [volunteer.report(tracker.manifest, s) for s in range(1, 7)]
        acks = accepted(tracker, sent[:3])
        pg.stop(mode)  # `immediate` is a crash: recovery from the WAL at the next start
        pg.start()
        acks |= accepted(tracker, sent[3:])  # the first try after the restart: the store reconnects
        assert_consistent(tracker, sent, acks)
    finally:
        tracker.stop()


def test_connection_lost_in_the_network_does_not_lock_the_tracker_out_of_its_log(tmp_path, cutter):
    """The server still holds the lost session (and with it the writer's lock): the store ends that session,
    its own, and carries on; before, every reconnect was refused as "another tracker holds the ledger"."""
    tracker = RunningTracker(tmp_path, db=cutter.url())
    try:
        volunteer = registered(tracker, tmp_path)
        sent = [volunteer.report(tracker.manifest, 1), volunteer.report(tracker.manifest, 2)]
        acks = accepted(tracker, sent[:1])
        cutter.sever()
        acks |= accepted(tracker, sent[1:])
        assert_consistent(tracker, sent, acks)
    finally:
        tracker.stop()


@pytest.mark.parametrize("cut", ["before", "after"])
def test_commit_cut_off_is_settled_at_once(tmp_path, cutter, cut):
    """`before`: the server never saw the COMMIT, so nothing landed: not acknowledged, and its resend is
    logged. `after`: it landed and its answer was lost: the ledger asks the store at once, after
    reconnecting, finds it, and acknowledges it on the first try."""
    tracker = RunningTracker(tmp_path, db=cutter.url())
    try:
        volunteer = registered(tracker, tmp_path)
        sent = [volunteer.report(tracker.manifest, 1), volunteer.report(tracker.manifest, 2)]
        size = tracker.tracker.ledger.size
        cutter.arm(cut)
        if cut == "before":
            with pytest.raises(grpc.RpcError):  # not acknowledged: the node keeps it queued
                submit_reports(tracker.stub, sent[:1])
            assert tracker.tracker.ledger.size == size
        acks = accepted(tracker, sent[:1])
        assert cutter.cut.is_set()
        acks |= accepted(tracker, sent[1:])
        assert_consistent(tracker, sent, acks)
    finally:
        tracker.stop()


@pytest.mark.parametrize("next_append", ["the resend", "another report"])
def test_commit_landed_and_found_only_later_is_checked_and_counted_once(tmp_path, cutter, monkeypatch,
                                                                       next_append):
    # Two quick tries to reconnect (about 0.75 s), not six (about 16 s): the database stays away for them.
    monkeypatch.setattr(postgres_store, "RECONNECT_ATTEMPTS", 2)
    tracker = RunningTracker(tmp_path, db=cutter.url())
    try:
        handed_over = []
        on_landed_late = tracker.tracker.writer.on_landed_late
        tracker.tracker.writer.on_landed_late = lambda late: (handed_over.extend(late), on_landed_late(late))
        volunteer = registered(tracker, tmp_path)
        first, second = volunteer.report(tracker.manifest, 1), volunteer.report(tracker.manifest, 2)
        cutter.arm("after", then_refuse=True)
        with pytest.raises(grpc.RpcError):  # it landed, but nobody can tell yet: not acknowledged
            submit_reports(tracker.stub, [first])
        index = tracker.tracker.ledger.size  # where it landed: the tree does not have it yet
        cutter.refuse.clear()  # the database is back
        if next_append == "the resend":
            acks = accepted(tracker, [first])
            acks |= accepted(tracker, [second])
        else:
            acks = accepted(tracker, [second])
            acks |= accepted(tracker, [first])  # a replay now, answered with the entry that landed
        assert acks[first] == index
        # Handed to the verifier's side (`Verification.on_landed_late`: checked as a grant is after a restart).
        assert [i for i, entry in handed_over if entry.grant.report == first] == [index]
        state = tracker.tracker.service.accounts.get(volunteer.account.account_id)
        assert not state.reserved and state.logged_sequence == 2
        assert sum(state.samples_by_epoch.values()) == 2 * 16, "the landed report's samples counted twice"
        assert_consistent(tracker, [first, second], acks)
    finally:
        tracker.stop()
