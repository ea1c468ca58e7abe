"""Turning a training window into what the tracker receives: a signed report, carrying the groupmates' attestations."""

from __future__ import annotations

import logging

from potluck.attestations import open_attestation
from potluck.errors import VerificationError
from potluck.identity import AccountKey
from potluck.manifest import SignedManifest
from potluck.node.training import WindowStats
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.proto.report_pb2 import AveragingRound, ContributionReport
from potluck.proto.wire import MAX_ATTESTATIONS_PER_REPORT
from potluck.signing import PURPOSE_REPORT, seal

logger = logging.getLogger(__name__)

# Characters of an averaging failure a report keeps: the text is hivemind's exception, which may quote what
# a groupmate sent (up to 4 MiB); a report is at most MAX_REPORT_BYTES, and the tracker reads only the gist.
MAX_FAILURE_CHARS = 500


def groupmate_attestations(groupmates: dict[str, bytes | None], origin: str) -> list[SignedEnvelope]:
    """The attestations worth carrying: each verifies, is for this swarm, names its signer, and was
    gathered from the very peer it names (hivemind authenticates who sent what in a round).

    A groupmate may send anything (a modified node, a throwaway key); what fails these checks is
    dropped, not carried, and at most `MAX_ATTESTATIONS_PER_REPORT` are kept. What the node cannot
    check (which account the tracker bound the peer to) the tracker checks, and blames only the signer.
    """
    kept = []
    for peer_id, payload in sorted(groupmates.items()):
        if len(kept) == MAX_ATTESTATIONS_PER_REPORT:
            break
        if not payload:
            continue
        try:
            claim = open_attestation(payload, origin)
        except VerificationError as e:
            logger.info("dropped the attestation groupmate %s sent: %s", peer_id, e)
            continue
        if claim.peer_id != peer_id or not claim.names_its_signer:
            logger.info("dropped the attestation groupmate %s sent: it names peer %s and account %s, signed by %s",
                        peer_id, claim.peer_id, claim.account_id[:12], claim.signer[:12])
            continue
        kept.append(SignedEnvelope.FromString(payload))
    return kept


def build_report(stats: WindowStats, *, manifest: SignedManifest, account: AccountKey, sequence: int) -> bytes:
    """The signed contribution report for one window."""
    attestations = groupmate_attestations(stats.groupmates, manifest.origin)
    report = ContributionReport(
        origin=manifest.origin, manifest_id=manifest.manifest_id, account_id=account.account_id,
        peer_id=stats.peer_id, sequence=sequence, epoch=stats.epoch, batch_size=stats.batch_size,
        losses=list(stats.losses), num_samples=stats.samples, num_tokens=stats.tokens,
        gradient_sketch=list(stats.sketch), state_digest=stats.start_state_digest,
        averaging=AveragingRound(succeeded=stats.averaged, failure=(stats.averaging_error or "")[:MAX_FAILURE_CHARS],
                                 attestations=attestations),
        wall_time=stats.wall_time, device_class=stats.device_class, started_at=stats.started_at)
    return seal(report.SerializeToString(deterministic=True), purpose=PURPOSE_REPORT, origin=manifest.origin,
                signing_key=account.signing_key)
