"""Stage (a) over a real tracker: acks only after logging, idempotent resends, precise rejections."""

import time

import grpc
import pytest
from swarmkit import Volunteer, make_manifest, submit_reports

from potluck.entries import decode_entry
from potluck.proto import tracker_pb2 as pb
from potluck.proto.wire import EPOCH_SLACK
from potluck.tlog import verify_receipt

pytestmark = pytest.mark.timeout(60)


def submit(tracker, *reports):
    return submit_reports(tracker.stub, list(reports))


@pytest.fixture
def alice(tracker, tmp_path):
    volunteer = Volunteer.create(tmp_path)
    tracker.stub.Register(pb.RegisterRequest(binding=volunteer.binding(tracker.manifest)), timeout=10)
    return volunteer


def registered_account(tracker, tmp_path):
    """An account with a peer of its own registered."""
    other = Volunteer.create(tmp_path)
    tracker.stub.Register(pb.RegisterRequest(binding=other.binding(tracker.manifest)), timeout=10)
    return other.account


def test_accepted_reports_come_with_a_receipt_and_resends_get_the_same_ack(tracker, alice):
    first, second = alice.report(tracker.manifest, 1), alice.report(tracker.manifest, 2)
    acks = submit(tracker, first, second)
    assert [a.verdict for a in acks] == [pb.ReportAck.ACCEPTED] * 2
    for ack, report in zip(acks, (first, second), strict=True):
        index, entry, _ = verify_receipt(ack.receipt, tracker.tracker.log_key)
        assert index == ack.index and decode_entry(entry).grant.report == report
    size = tracker.tracker.ledger.size
    [again] = submit(tracker, first)
    assert (again.verdict, again.index) == (pb.ReportAck.ACCEPTED, acks[0].index)
    assert tracker.tracker.ledger.size == size


@pytest.mark.parametrize(("make", "code", "reason"), [
    (lambda t, v, o: v.report(t.manifest, 1), "ALREADY_EXISTS", "replay: sequence 1"),
    (lambda t, v, o: v.report(make_manifest(o, pinned=False), 9), "FAILED_PRECONDITION", "report for another swarm"),
    (lambda t, v, o: Volunteer(registered_account(t, o), v.peer).report(t.manifest, 9), "UNAUTHENTICATED",
     "is bound to account"),
    # An account with no registered peer: refused before any signature is checked.
    (lambda t, v, o: Volunteer(Volunteer.create(o).account, v.peer).report(t.manifest, 9), "FAILED_PRECONDITION",
     "has no registered peer"),
    (lambda t, v, o: v.report(t.manifest, 9, num_samples=999), "INVALID_ARGUMENT", "micro-batches"),
    (lambda t, v, o: v.report(t.manifest, 9, losses=[float("nan"), 1.0]), "INVALID_ARGUMENT", "finite"),
    (lambda t, v, o: v.report(t.manifest, 9, wall_time=1e-9), "INVALID_ARGUMENT", "not plausible"),
    # A window far in the past, with a wall time long enough to make any claim plausible.
    (lambda t, v, o: v.report(t.manifest, 9, started_at=time.time() - 100 * 3600, wall_time=100 * 3600 - 1.0),
     "INVALID_ARGUMENT", "more than 72 h"),
    (lambda t, v, o: v.report(t.manifest, 9, started_at=time.time() - 3600, wall_time=3599.0), "INVALID_ARGUMENT",
     "before peer"),
    # The same seconds backing a second report.
    (lambda t, v, o: v.report(t.manifest, 9, started_at=v.next_start - 15.0, wall_time=1.0), "INVALID_ARGUMENT",
     "overlaps account"),
    (lambda t, v, o: v.report(t.manifest, 9, steps=80, batch_size=2000, epoch=1), "INVALID_ARGUMENT", "target batch"),
    (lambda t, v, o: b"\xff\xff\xff", "INVALID_ARGUMENT", "SignedEnvelope"),
    # 22,000 micro-batches: ~0.26 MB, more than a grant entry holds (20,000 fit: see the reporter's tests).
    (lambda t, v, o: v.report(t.manifest, 9, steps=22_000, batch_size=1), "INVALID_ARGUMENT", "exceeds"),
    # 9 micro-batches are 2 segments (8 + 1): 32 sketch values, not one sketch per micro-batch, one short or extra.
    (lambda t, v, o: v.report(t.manifest, 9, steps=9, gradient_sketch=[0.1] * 16 * 9), "INVALID_ARGUMENT",
     "sketch values per segment"),
    (lambda t, v, o: v.report(t.manifest, 9, steps=9, gradient_sketch=[0.1] * 16), "INVALID_ARGUMENT", "(32)"),
    (lambda t, v, o: v.report(t.manifest, 9, steps=9, gradient_sketch=[0.1] * 48), "INVALID_ARGUMENT", "(32)"),
])
def test_bad_reports_are_rejected_with_a_status_and_the_tracker_stays_up(tracker, alice, tmp_path, make, code,
                                                                         reason):
    assert submit(tracker, alice.report(tracker.manifest, 1))[0].verdict == pb.ReportAck.ACCEPTED
    report = make(tracker, alice, tmp_path)
    size = tracker.tracker.ledger.size
    [ack] = submit(tracker, report)
    assert (ack.verdict, ack.code) == (pb.ReportAck.REJECTED, code) and reason in ack.reason, ack
    assert tracker.tracker.ledger.size == size
    assert submit(tracker, alice.report(tracker.manifest, 2))[0].verdict == pb.ReportAck.ACCEPTED


def test_a_second_peer_of_the_account_cannot_reuse_its_time(tracker, alice, tmp_path):
    # Peers are free to make: the account's windows, not each peer's, may not overlap.
    second = Volunteer(alice.account, Volunteer.create(tmp_path).peer)
    tracker.stub.Register(pb.RegisterRequest(binding=second.binding(tracker.manifest)), timeout=10)
    first = alice.report(tracker.manifest, 1, started_at=time.time() - 30.0, wall_time=20.0)
    again = second.report(tracker.manifest, 2, started_at=time.time() - 30.0, wall_time=20.0)
    acks = submit(tracker, first, again)
    assert [a.verdict for a in acks] == [pb.ReportAck.ACCEPTED, pb.ReportAck.REJECTED], acks
    assert "overlaps account" in acks[1].reason


def test_a_report_signed_by_a_key_other_than_the_bound_one(tracker, alice, tmp_path):
    mallory = registered_account(tracker, tmp_path)
    [ack] = submit(tracker, alice.report(tracker.manifest, 1, signer=mallory))
    assert (ack.verdict, ack.code) == (pb.ReportAck.REJECTED, "UNAUTHENTICATED")
    assert f"claims account {alice.account.account_id[:12]} but is signed by {mallory.account_id[:12]}" in ack.reason


def test_unregistered_peers_must_register_first(tracker, tmp_path):
    stranger = Volunteer.create(tmp_path)
    [ack] = submit(tracker, stranger.report(tracker.manifest, 1))
    assert ack.code == "FAILED_PRECONDITION" and "register the binding first" in ack.reason


def test_bad_bindings_get_precise_statuses(tracker, alice, tmp_path):
    with pytest.raises(grpc.RpcError) as err:
        tracker.stub.Register(pb.RegisterRequest(binding=b"junk"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    thief = Volunteer(Volunteer.create(tmp_path).account, alice.peer)  # claims alice's PeerID
    with pytest.raises(grpc.RpcError) as err:
        tracker.stub.Register(pb.RegisterRequest(binding=thief.binding(tracker.manifest)), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "already bound" in err.value.details()
    other_swarm = alice.binding(make_manifest(tmp_path, pinned=False))
    with pytest.raises(grpc.RpcError) as err:
        tracker.stub.Register(pb.RegisterRequest(binding=other_swarm), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_manifest_and_log_key_are_served(tracker):
    response = tracker.stub.GetManifest(pb.GetManifestRequest(), timeout=10)
    assert response.signed_manifest == tracker.manifest.envelope
    assert response.log_key == tracker.tracker.log_key


def test_an_account_over_its_rate_limit_gets_resource_exhausted(tracker, alice):
    from potluck.tracker.intake.report_intake import RATE_BURST

    reports = [alice.report(tracker.manifest, sequence) for sequence in range(1, 2 * RATE_BURST + 1)]
    codes = [ack.code for ack in submit(tracker, *reports)]
    assert codes[:RATE_BURST] == [""] * RATE_BURST  # a burst (say, after an outage) is fine
    # Then the bucket refills at RATE_PER_SECOND: on a busy machine a few more get through.
    assert set(codes[RATE_BURST:]) <= {"", "RESOURCE_EXHAUSTED"} and codes.count("RESOURCE_EXHAUSTED") > 100


def test_registering_the_same_account_and_peer_again_logs_nothing_new(tracker, alice):
    """PSS signatures are randomized, so each fresh binding of one (account, peer) pair is new bytes: without
    a check, anyone could grow the log (and the tracker's memory) by one durable entry per call, forever."""
    first = tracker.tracker.ledger.balances.binding_index[alice.peer.peer_id]
    size = tracker.tracker.ledger.size
    for _ in range(5):
        again = alice.binding(tracker.manifest)
        answer = tracker.stub.Register(pb.RegisterRequest(binding=again), timeout=10)
        assert answer.index == first
    assert tracker.tracker.ledger.size == size


def test_an_epoch_a_little_ahead_is_refused_for_now_and_a_made_up_one_for_good(tracker, alice):
    assert submit(tracker, alice.report(tracker.manifest, 1, epoch=0))[0].verdict == pb.ReportAck.ACCEPTED
    # Others' reports of the epochs between may still be on their way: the node keeps this one and resends it.
    [near] = submit(tracker, alice.report(tracker.manifest, 2, epoch=EPOCH_SLACK + 1))
    assert (near.verdict, near.retry) == (pb.ReportAck.REJECTED, True) and "ahead of the swarm's" in near.reason
    # No honest node runs this far past the tracker's epoch: it is not worth resending, ever.
    [far] = submit(tracker, alice.report(tracker.manifest, 3, epoch=10**6))
    assert (far.verdict, far.retry) == (pb.ReportAck.REJECTED, False) and "ahead of the swarm's" in far.reason
