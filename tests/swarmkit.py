"""A real swarm's paperwork for tests: a lead-signed manifest, volunteers with bound identities, and
reports that pass the tracker's checks."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from potluck.binding import PeerIdentity, load_or_create_peer_identity, make_binding
from potluck.identity import AccountKey
from potluck.manifest import SignedManifest, sign_manifest, verify_manifest
from potluck.proto import tracker_pb2 as pb
from potluck.proto.report_pb2 import AveragingRound, ContributionReport
from potluck.proto.wire import SKETCH_DIM, num_segments
from potluck.signing import PURPOSE_REPORT, seal
from potluck.tracker.swarm.swarm_config import parse_swarm_config, render_swarm_template
from potluck.tracker.swarm.swarm_start import pin_tracker

# A test window lasts 10 ms: short enough that hundreds of back-to-back windows end before the
# tracker's clock slack runs out, long enough that their claims are plausible for their time.
WALL_TIME = 0.01


def submit_reports(stub, reports: list[bytes], *, per_message: int = 64, timeout: float = 30) -> list[pb.ReportAck]:
    """Send reports over one SubmitReports stream, `per_message` to a message; return every ack, in order."""
    messages = [pb.SubmitReportsRequest(reports=reports[i:i + per_message])
                for i in range(0, len(reports), per_message)]
    return [ack for response in stub.SubmitReports(iter(messages), timeout=timeout) for ack in response.acks]


def make_manifest(tmp_path: Path, *, tracker: str = "127.0.0.1:1", edit=lambda text: text,
                  pinned: bool = True) -> SignedManifest:
    """A signed test manifest; `pinned`: it pins the log key and certificate of the tracker in tmp_path/tracker."""
    lead = AccountKey.generate()
    manifest = parse_swarm_config(edit(render_swarm_template("test")))
    manifest.tracker_address = tracker
    if pinned:
        pin_tracker(manifest, tmp_path / "tracker")
    return verify_manifest(sign_manifest(manifest, lead))


@dataclass
class Volunteer:
    account: AccountKey
    peer: PeerIdentity
    next_start: float = 0.0  # an account's windows follow each other: the tracker refuses overlapping ones

    @classmethod
    def create(cls, directory: Path) -> Volunteer:
        return cls(AccountKey.generate(), load_or_create_peer_identity(directory / f"peer-{os.urandom(4).hex()}.key"))

    def binding(self, manifest: SignedManifest) -> bytes:
        return make_binding(self.account, self.peer, manifest.origin)

    def report(self, manifest: SignedManifest, sequence: int, *, epoch: int | None = None, steps: int = 2,
               batch_size: int = 8, signer: AccountKey | None = None, **overrides) -> bytes:
        wall_time = overrides.pop("wall_time", WALL_TIME)
        started_at = overrides.pop("started_at", max(self.next_start, time.time() - wall_time))
        self.next_start = max(self.next_start, started_at + wall_time)
        fields = dict(
            origin=manifest.origin, manifest_id=manifest.manifest_id, account_id=self.account.account_id,
            peer_id=self.peer.peer_id, sequence=sequence, epoch=sequence if epoch is None else epoch,
            batch_size=batch_size, losses=[1.5] * steps, num_samples=steps * batch_size,
            num_tokens=steps * batch_size, gradient_sketch=[0.1] * SKETCH_DIM * num_segments(steps),
            state_digest=os.urandom(32),
            averaging=AveragingRound(succeeded=False, failure="alone"), wall_time=wall_time, device_class="cpu",
            started_at=started_at)
        fields.update(overrides)
        report = ContributionReport(**fields)
        return seal(report.SerializeToString(deterministic=True), purpose=PURPOSE_REPORT, origin=manifest.origin,
                    signing_key=(signer or self.account).signing_key)
