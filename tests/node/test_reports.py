"""What a node carries of its groupmates' attestations: only those that verify, name their signer and
were sent by the peer they name; at most MAX_ATTESTATIONS_PER_REPORT. A groupmate may send anything."""

import time

from swarmkit import make_manifest

from potluck.attestations import open_attestation, sign_attestation
from potluck.identity import AccountKey
from potluck.node.reports import build_report, groupmate_attestations
from potluck.node.training import WindowStats
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.proto.report_pb2 import Attestation
from potluck.proto.wire import MAX_ATTESTATION_BYTES, MAX_ATTESTATIONS_PER_REPORT, MAX_REPORT_BYTES, SKETCH_DIM
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


def test_what_groupmates_send_cannot_push_a_report_past_what_the_tracker_takes(tmp_path):
    # Threat: hivemind lets each groupmate gather up to 4 MiB, and its exceptions may quote them; carried
    # into the report, that made it too large to log, so the honest window's credit was lost.
    account, peer = AccountKey.generate(), "peer-self"
    manifest = make_manifest(tmp_path)
    honest = {f"peer-{i:03d}": sign_attestation(AccountKey.generate(), manifest.origin, 0, f"peer-{i:03d}")
              for i in range(2 * MAX_ATTESTATIONS_PER_REPORT)}
    flood = {f"flood-{i}": b"\x00" * (4 << 20) for i in range(4)}
    stats = WindowStats(epoch=0, account_id=account.account_id, peer_id=peer, batch_size=1, samples=8, tokens=8,
                        losses=(1.0,) * 8, sketch=(0.0,) * SKETCH_DIM, start_state_digest=b"\x00" * 32,
                        averaged=False, groupmates=honest | flood, averaging_error="bad peer: " + "x" * (4 << 20),
                        started_at=time.time(), wall_time=1.0, device_class="cpu")
    report = build_report(stats, manifest=manifest, account=account, sequence=1)
    assert len(report) <= MAX_REPORT_BYTES
