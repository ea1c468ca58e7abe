"""What a node carries of its groupmates' attestations: only those that verify, name their signer and
were sent by the peer they name; at most MAX_ATTESTATIONS_PER_REPORT. A groupmate may send anything."""

from potluck.attestations import open_attestation, sign_attestation
from potluck.identity import AccountKey
from potluck.node.reports import groupmate_attestations
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.proto.report_pb2 import Attestation
from potluck.proto.wire import MAX_ATTESTATION_BYTES, MAX_ATTESTATIONS_PER_REPORT
from potluck.signing import PURPOSE_ATTESTATION, seal

ORIGIN = "potluck:test"


def carried(groupmates) -> list[str]:
    return [open_attestation(e.SerializeToString(deterministic=True), ORIGIN).peer_id
            for e in groupmates_kept(groupmates)]


def groupmates_kept(groupmates):
    return groupmate_attestations(groupmates, ORIGIN)


def test_true_attestations_are_carried_and_bad_ones_dropped():
    honest, other = AccountKey.generate(), AccountKey.generate()
    naming_another = seal(Attestation(origin=ORIGIN, epoch=0, peer_id="peer-e", account_id=honest.account_id)
                          .SerializeToString(), purpose=PURPOSE_ATTESTATION, origin=ORIGIN,
                          signing_key=other.signing_key)
    groupmates = {
        "peer-a": sign_attestation(honest, ORIGIN, 3, "peer-a"),  # true
        "peer-b": sign_attestation(honest, ORIGIN, 3, "peer-a"),  # sent by b, names a: a replay
        "peer-c": sign_attestation(honest, "potluck:elsewhere", 3, "peer-c"),  # another swarm
        "peer-d": b"\xff\x00junk",
        "peer-e": naming_another,  # signed by one account, naming another
        "peer-f": None,  # sent nothing that was bytes
        "peer-g": sign_attestation(honest, ORIGIN, 3, "peer-g") + b"\x00" * MAX_ATTESTATION_BYTES,  # too large
    }
    assert carried(groupmates) == ["peer-a"]


def test_a_throwaway_key_that_names_itself_is_carried_for_the_tracker_to_judge():
    # The node cannot know which account the tracker bound a peer to; the tracker checks that.
    assert carried({"peer-a": sign_attestation(AccountKey.generate(), ORIGIN, 0, "peer-a")}) == ["peer-a"]


def test_at_most_the_cap_is_carried():
    account = AccountKey.generate()
    groupmates = {f"peer-{i:03d}": sign_attestation(account, ORIGIN, 0, f"peer-{i:03d}")
                  for i in range(MAX_ATTESTATIONS_PER_REPORT + 5)}
    kept = groupmates_kept(groupmates)
    assert len(kept) == MAX_ATTESTATIONS_PER_REPORT
    assert all(isinstance(e, SignedEnvelope) for e in kept)
