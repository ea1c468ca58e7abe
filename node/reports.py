"""Turning a training window into what the tracker receives: signed attestations and reports."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from potluck.identity import AccountKey
from potluck.manifest import SignedManifest
from potluck.node.training import WindowStats
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.proto.report_pb2 import Attestation, AveragingRound, ContributionReport
from potluck.signing import PURPOSE_ATTESTATION, PURPOSE_REPORT, seal


def attestation(account: AccountKey, origin: str, epoch: int, peer_id: str) -> bytes:
    """What this node gathers into its averaging round at `epoch`: proof to groupmates of who it is."""
    message = Attestation(origin=origin, epoch=epoch, peer_id=peer_id, account_id=account.account_id)
    return seal(message.SerializeToString(deterministic=True), purpose=PURPOSE_ATTESTATION, origin=origin,
                signing_key=account.signing_key)


def build_report(stats: WindowStats, *, manifest: SignedManifest, account: AccountKey, sequence: int) -> bytes:
    """The signed contribution report for one window."""
    attestations = []
    for payload in stats.groupmates.values():
        try:
            if payload:
                attestations.append(SignedEnvelope.FromString(payload))
        except DecodeError:
            continue  # a groupmate sent junk: it simply attests nothing
    report = ContributionReport(
        origin=manifest.origin, manifest_id=manifest.manifest_id, account_id=account.account_id,
        peer_id=stats.peer_id, sequence=sequence, epoch=stats.epoch, batch_size=stats.batch_size,
        losses=list(stats.losses), num_samples=stats.samples, num_tokens=stats.tokens,
        gradient_sketch=list(stats.sketch), state_digest=stats.start_state_digest,
        averaging=AveragingRound(succeeded=stats.averaged, failure=stats.averaging_error or "",
                                 attestations=attestations),
        wall_time=stats.wall_time, device_class=stats.device_class, started_at=stats.started_at)
    return seal(report.SerializeToString(deterministic=True), purpose=PURPOSE_REPORT, origin=manifest.origin,
                signing_key=account.signing_key)
