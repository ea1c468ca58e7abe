"""Attestations in reports, over a real tracker: their signatures are checked in the report-opening
workers, their bindings by the tracker, and a forged or unreadable one is a strike on the reporter."""

import pytest
from swarmkit import submit_reports
from trackerkit import registered

from potluck.entries import decode_entry
from potluck.identity import AccountKey
from potluck.node.reports import attestation
from potluck.proto import tracker_pb2 as pb
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.proto.report_pb2 import AveragingRound

pytestmark = pytest.mark.timeout(60)


def strikes(tracker, account_id):
    entries = [decode_entry(e) for e in tracker.tracker.ledger.entries(0, tracker.tracker.ledger.size)]
    return [e.strike.reason for e in entries if e.WhichOneof("kind") == "strike" and e.strike.account_id == account_id]


@pytest.mark.parametrize(("make", "reason"), [
    (lambda bob, origin: attestation(bob.account, origin, 0, bob.peer.peer_id), None),
    # Bob's peer, Bob's account named, but signed by someone else.
    (lambda bob, origin: attestation(AccountKey.generate(), origin, 0, bob.peer.peer_id), "not by the account"),
    (lambda bob, origin: SignedEnvelope(purpose="potluck/attestation/v1", origin=origin, payload=b"\xff",
                                        signer=bytes(32), signature=bytes(64)).SerializeToString(),
     "does not verify"),
])
def test_a_forged_attestation_is_a_strike_and_a_true_one_is_not(tracker, tmp_path, make, reason):
    alice, bob = registered(tracker, tmp_path), registered(tracker, tmp_path)
    groupmate = SignedEnvelope.FromString(make(bob, tracker.manifest.origin))
    report = alice.report(tracker.manifest, 1, averaging=AveragingRound(succeeded=True, attestations=[groupmate]))
    [ack] = submit_reports(tracker.stub, [report])
    assert ack.verdict == pb.ReportAck.ACCEPTED  # logged, then judged: the strike is on the ledger
    struck = strikes(tracker, alice.account.account_id)
    if reason is None:
        assert struck == []
    else:
        assert len(struck) == 1 and reason in struck[0], struck
