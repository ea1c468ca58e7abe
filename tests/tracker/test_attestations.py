"""Attestations in reports, over a real tracker: their signatures are checked in the report-opening
workers, their bindings by the tracker, and a false one costs only whoever signed it.

Threat: a griefer gathers attestations signed by a throwaway key into its rounds, so that honest
groupmates carry them. Before this was fixed, each one was a strike on the honest reporter (three
reports: forfeit and ban). Now the reporter is never charged, a registered account that signed a
false statement is struck (once per statement), and the account whose peer it names only has it
recorded: who sent what in a round is the reporter's word alone, so anything more would let any
reporter harm any account.
"""

import pytest
from swarmkit import make_manifest, submit_reports
from trackerkit import RunningTracker, registered

from potluck.attestations import sign_attestation
from potluck.entries import decode_entry
from potluck.identity import AccountKey
from potluck.proto import tracker_pb2 as pb
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.proto.report_pb2 import AveragingRound
from potluck.proto.wire import MAX_ATTESTATIONS_PER_REPORT

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def tracker(tmp_path):
    # No new-account scrutiny, so that any change of scrutiny shows.
    manifest = make_manifest(tmp_path, edit=lambda text: text.replace("new_account_checks = 5",
                                                                      "new_account_checks = 0"))
    running = RunningTracker(tmp_path, manifest)
    yield running
    running.stop()


def strikes(tracker) -> dict[str, list[str]]:
    entries = [decode_entry(e) for e in tracker.tracker.ledger.entries(0, tracker.tracker.ledger.size)]
    found = {}
    for entry in entries:
        if entry.WhichOneof("kind") == "strike":
            found.setdefault(entry.strike.account_id, []).append(entry.strike.reason)
    return found


def state(tracker, volunteer):
    return tracker.tracker.service.accounts.get(volunteer.account.account_id)


def penalties(tracker) -> int:
    entries = [decode_entry(e) for e in tracker.tracker.ledger.entries(0, tracker.tracker.ledger.size)]
    return sum(e.WhichOneof("kind") in ("strike", "forfeit", "ban") for e in entries)


def scrutiny(tracker, volunteer) -> int:
    return state(tracker, volunteer).scrutiny_left


def send_with(tracker, reporter, attestations: list[bytes], sequence: int = 1) -> pb.ReportAck:
    carried = [SignedEnvelope.FromString(a) for a in attestations]
    report = reporter.report(tracker.manifest, sequence,
                             averaging=AveragingRound(succeeded=True, attestations=carried))
    [ack] = submit_reports(tracker.stub, [report])
    return ack


def test_a_true_attestation_costs_nobody_anything(tracker, tmp_path):
    alice, bob = registered(tracker, tmp_path), registered(tracker, tmp_path)
    ack = send_with(tracker, alice, [sign_attestation(bob.account, tracker.manifest.origin, 0, bob.peer.peer_id)])
    assert ack.verdict == pb.ReportAck.ACCEPTED
    assert strikes(tracker) == {}
    assert scrutiny(tracker, bob) == 0


def test_a_throwaway_key_for_a_peer_costs_neither_the_reporter_nor_the_peer(tracker, tmp_path):
    alice, bob = registered(tracker, tmp_path), registered(tracker, tmp_path)
    throwaway = AccountKey.generate()  # the griefer's: valid signature, bound to nothing
    ack = send_with(tracker, alice, [sign_attestation(throwaway, tracker.manifest.origin, 0, bob.peer.peer_id)])
    assert ack.verdict == pb.ReportAck.ACCEPTED
    assert strikes(tracker) == {}  # not alice (who carried it), not bob (who signed nothing)
    assert scrutiny(tracker, alice) == scrutiny(tracker, bob) == 0
    # Recorded against bob, for the lead to see (his peer may be a griefer's; alice may be lying).
    assert state(tracker, bob).named_in_false_attestations == 1
    assert state(tracker, alice).named_in_false_attestations == 0


def test_a_registered_account_signing_for_a_peer_not_its_own_is_struck(tracker, tmp_path):
    alice, bob, carol = (registered(tracker, tmp_path) for _ in range(3))
    ack = send_with(tracker, alice, [sign_attestation(carol.account, tracker.manifest.origin, 0, bob.peer.peer_id)])
    assert ack.verdict == pb.ReportAck.ACCEPTED
    struck = strikes(tracker)
    assert list(struck) == [carol.account.account_id], struck
    assert "bound to" in struck[carol.account.account_id][0]


def test_one_false_statement_carried_again_is_one_strike(tracker, tmp_path):
    alice, bob, carol = (registered(tracker, tmp_path) for _ in range(3))
    false = sign_attestation(carol.account, tracker.manifest.origin, 0, bob.peer.peer_id)
    for sequence in (1, 2, 3):  # replayed in three reports: three strikes would forfeit and ban carol at once
        assert send_with(tracker, alice, [false], sequence).verdict == pb.ReportAck.ACCEPTED
    assert len(strikes(tracker)[carol.account.account_id]) == 1


def test_one_report_costs_a_signer_one_strike_and_a_banned_signer_none(tracker, tmp_path):
    # Threat: a Sybil signs many distinct false statements and its other account carries 64 per report:
    # each would be a ledger entry, even after the signer's ban.
    alice, bob, carol = (registered(tracker, tmp_path) for _ in range(3))
    origin = tracker.manifest.origin
    statements = [sign_attestation(carol.account, origin, epoch, bob.peer.peer_id) for epoch in range(8)]
    for sequence in (1, 2, 3):  # strike + forfeit, strike + ban: then nothing more
        assert send_with(tracker, alice, statements[2 * sequence:2 * sequence + 2], sequence).verdict == \
            pb.ReportAck.ACCEPTED
        assert len(strikes(tracker)[carol.account.account_id]) == min(sequence, 2)
    assert state(tracker, carol).ban_decided
    before = penalties(tracker)
    assert send_with(tracker, alice, statements[:2], 4).verdict == pb.ReportAck.ACCEPTED
    assert penalties(tracker) == before  # no strike, forfeit or ban more for anyone


def test_an_unreadable_attestation_is_ignored(tracker, tmp_path):
    alice = registered(tracker, tmp_path)
    junk = SignedEnvelope(purpose="potluck/attestation/v1", origin=tracker.manifest.origin, payload=b"\xff",
                          signer=bytes(32), signature=bytes(64)).SerializeToString()
    ack = send_with(tracker, alice, [junk])
    assert ack.verdict == pb.ReportAck.ACCEPTED
    assert strikes(tracker) == {}


def test_more_attestations_than_a_node_keeps_are_refused(tracker, tmp_path):
    alice, bob = registered(tracker, tmp_path), registered(tracker, tmp_path)
    one = sign_attestation(bob.account, tracker.manifest.origin, 0, bob.peer.peer_id)
    ack = send_with(tracker, alice, [one] * (MAX_ATTESTATIONS_PER_REPORT + 1))
    assert (ack.verdict, ack.code) == (pb.ReportAck.REJECTED, "INVALID_ARGUMENT"), ack
    assert f"more than {MAX_ATTESTATIONS_PER_REPORT}" in ack.reason
