"""Stage (a) of verification: the cheap checks every report passes before it is acknowledged.

Signature, bound account, manifest, sequence (replay), epoch near the swarm's, finite values,
samples plausible for the elapsed time and device, and per-epoch claims within the target batch.
A report that fails gets a `Rejected` naming the gRPC status that fits and the reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from potluck.errors import VerificationError
from potluck.identity import account_id_of
from potluck.manifest import SignedManifest
from potluck.proto.report_pb2 import ContributionReport
from potluck.proto.wire import EPOCH_SLACK, MAX_REPORT_BYTES, SKETCH_DIM, STEPS_PER_SKETCH, num_segments
from potluck.signing import parse_envelope
from potluck.tracker.credit import Accounts
from potluck.tracker.intake.rejected import Rejected

CLOCK_SLACK = 60.0  # seconds of clock difference tolerated between node and tracker
# How old a window may be when it arrives. A node queues its reports while the tracker is away and
# resends them; beyond this, a window's time is not worth checking against anything.
MAX_WINDOW_AGE = 72 * 3600.0
# An account's windows follow each other (the next starts after the last ends); started_at is the
# wall clock and wall_time a monotonic clock, and an NTP step moves the first, so they may disagree.
WINDOW_OVERLAP_SLACK = 10.0
# A window may not start before its peer was registered (by the tracker's clock, which a node's may
# trail: more slack than CLOCK_SLACK, still far short of the hours a backdated window would need).
REGISTRATION_SLACK = 600.0
# hivemind peers overshoot the target batch when they do not yet see each other's progress or a round
# times out; measured here: up to 2x. More than that in one epoch is not an honest peer's claim.
EPOCH_OVERSHOOT = 2.0
# The fastest sustained training a device class could plausibly do, in FLOP/s (generous: an H200's
# dense bf16 peak is about 1e15). Claims beyond this for the wall time are not plausible.
PEAK_FLOPS = {"cpu": 1e13, "cuda": 2e15, "mps": 1e14}


# Honest nodes report once per window (seconds to minutes); a burst of resends after an outage is
# allowed, a flood is not.
RATE_BURST = 256  # reports an account may send at once
RATE_PER_SECOND = 2.0  # sustained reports per second per account


class TokenBucket:
    """At most `burst` at once, refilled at `per_second` (by default an account's reports)."""

    def __init__(self, now: float, burst: float = RATE_BURST, per_second: float = RATE_PER_SECOND):
        self.tokens, self.updated, self.burst, self.per_second = float(burst), now, burst, per_second

    def refill(self, now: float) -> float:
        """The tokens there are at `now`."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        return self.tokens

    def take(self, now: float) -> bool:
        if self.refill(now) < 1.0:
            return False
        self.tokens -= 1.0
        return True


class ReportIntake:
    """Checks reports against the manifest and what the ledger says about each account.

    These are the checks after `ReportOpener.open` (size, encoding, swarm, signature, signer,
    in worker processes): rate, account, claims, and the sequence number reserved, in the order
    reports arrive, on the event loop.
    """

    def __init__(self, manifest: SignedManifest, accounts: Accounts, *, flops_per_sample: int,
                 tokens_per_sample: int,
                 clock: Callable[[], float] = time.time):
        self.manifest, self.accounts = manifest, accounts
        self.flops_per_sample, self.tokens_per_sample = flops_per_sample, tokens_per_sample
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}

    def precheck(self, envelope: bytes) -> Rejected | None:
        """Why a report is refused before any of its signatures is checked, or None for it to go on.

        Threat: accounts are free to make, and a report's signature and attestations cost the tracker up to
        65 Ed25519 verifications; a report whose signer has no registered peer can never be logged, so it
        is refused for a parse (its signer is checked later, with its signature). A forged report naming a
        registered account goes on to that check, and so costs one signature, never that account's rate.
        """
        if len(envelope) > MAX_REPORT_BYTES:
            return Rejected("INVALID_ARGUMENT", f"report of {len(envelope)} bytes exceeds {MAX_REPORT_BYTES}")
        try:
            signer = account_id_of(parse_envelope(envelope).signer)
        except VerificationError as e:
            return Rejected("INVALID_ARGUMENT", str(e))
        account = self.accounts.find(signer)
        if account is None or not account.peer_ids:
            return Rejected("FAILED_PRECONDITION", f"account {signer[:12]} has no registered peer; register the "
                                                   "binding first")
        return None

    def admit(self, report: ContributionReport) -> None:
        """Check an opened report against its account and reserve its sequence number; raise `Rejected`."""
        now = time.monotonic()
        bucket = self.buckets.setdefault(report.account_id, TokenBucket(now))
        if not bucket.take(now):
            raise Rejected("RESOURCE_EXHAUSTED", f"account {report.account_id[:12]} sends more than "
                                                 f"{RATE_PER_SECOND:g} reports/s; slow down", temporary=True)
        self._check_account(report)
        self._check_claims(report)
        self.accounts.reserve(report)  # the sequence and the epoch's samples, until logged or released

    def _check_account(self, report: ContributionReport) -> None:
        account = self.accounts.find(report.account_id)
        bound_to = self.accounts.account_of_peer.get(report.peer_id)
        if bound_to is not None and bound_to != report.account_id:
            raise Rejected("UNAUTHENTICATED", f"peer {report.peer_id} is bound to account {bound_to[:12]}, not to "
                                              f"the signer {report.account_id[:12]}")
        if account is None or report.peer_id not in account.peer_ids:
            raise Rejected("FAILED_PRECONDITION", f"peer {report.peer_id} is not registered for account "
                                                  f"{report.account_id[:12]}; register the binding first")
        if account.banned:
            raise Rejected("PERMISSION_DENIED", f"account {report.account_id[:12]} is banned")
        if report.sequence <= account.last_sequence:
            raise Rejected("ALREADY_EXISTS", f"replay: sequence {report.sequence} is not above this account's last "
                                             f"{account.last_sequence}")

    def _check_claims(self, report: ContributionReport) -> None:
        # One sum, in C: NaN and infinity carry through it (as would values near 1e308, no honest claim).
        if not math.isfinite(sum(report.losses) + sum(report.gradient_sketch) + report.wall_time + report.started_at):
            raise Rejected("INVALID_ARGUMENT", "losses, gradient sketch and times must be finite numbers")
        if report.batch_size == 0 or report.num_samples != len(report.losses) * report.batch_size:
            raise Rejected("INVALID_ARGUMENT", f"num_samples {report.num_samples} is not {len(report.losses)} "
                                               f"micro-batches x batch_size {report.batch_size}")
        if report.num_tokens != report.num_samples * self.tokens_per_sample:
            raise Rejected("INVALID_ARGUMENT", f"num_tokens {report.num_tokens} is not num_samples x "
                                               f"{self.tokens_per_sample}")
        expected = SKETCH_DIM * num_segments(len(report.losses))
        if len(report.gradient_sketch) != expected:
            raise Rejected("INVALID_ARGUMENT", f"expected {SKETCH_DIM} sketch values per segment of "
                                               f"{STEPS_PER_SKETCH} micro-batches ({expected}), got "
                                               f"{len(report.gradient_sketch)}")
        if len(report.state_digest) != 32:
            raise Rejected("INVALID_ARGUMENT", "state_digest must be 32 bytes")
        self._check_time(report)
        # An epoch is where a window's data, sketch seed and claim cap come from: a made-up one would restart
        # the cap, and name an epoch nobody trained. The bound is the tracker's own view (no DHT record).
        newest = self.accounts.newest_epoch
        if report.epoch > newest + EPOCH_SLACK:
            # Refused for now while others' reports of the epochs between may still be on their way; an honest
            # node's epoch never runs more than EPOCH_SLACK past the tracker's that it last heard
            # (node/progress_bound.py), so one further ahead is made up: refused for good, not resent forever.
            raise Rejected("FAILED_PRECONDITION", f"epoch {report.epoch} is more than {EPOCH_SLACK} ahead of the "
                                                  f"swarm's epoch {newest} (the newest of any admitted report)",
                           temporary=report.epoch <= newest + 2 * EPOCH_SLACK)
        target = self.manifest.manifest.hivemind.target_batch_size
        already = self.accounts.get(report.account_id).samples_by_epoch.get(report.epoch, 0)
        if already + report.num_samples > EPOCH_OVERSHOOT * target:
            raise Rejected("INVALID_ARGUMENT", f"claims {already + report.num_samples} samples in epoch "
                                               f"{report.epoch}, more than {EPOCH_OVERSHOOT:g}x the swarm's target "
                                               f"batch of {target}")

    def _check_time(self, report: ContributionReport) -> None:
        """The window's time is real time the account spent, used once: it ends by now, started after its
        peer was bound and within MAX_WINDOW_AGE, and does not overlap the account's earlier windows.

        Threat: without these, `started_at` far in the past with a long `wall_time` makes any claim
        look plausible for its time, and the same hour could back any number of reports. (One account
        trains on one machine at a time: its reports' sequence numbers are one machine's count.)
        """
        now = self.clock()
        if not report.wall_time > 0:
            raise Rejected("INVALID_ARGUMENT", f"wall_time must be positive (got {report.wall_time})")
        if report.started_at > now + CLOCK_SLACK or report.started_at + report.wall_time > now + CLOCK_SLACK:
            raise Rejected("INVALID_ARGUMENT", "the window ends in the future by the tracker's clock")
        if report.started_at < now - MAX_WINDOW_AGE:
            raise Rejected("INVALID_ARGUMENT", f"the window started {(now - report.started_at) / 3600:.1f} h ago, "
                                               f"more than {MAX_WINDOW_AGE / 3600:g} h")
        bound_at = self.accounts.get(report.account_id).bound_at.get(report.peer_id)
        if bound_at is not None and report.started_at < bound_at - REGISTRATION_SLACK:
            raise Rejected("INVALID_ARGUMENT", f"the window started {bound_at - report.started_at:.0f} s before "
                                               f"peer {report.peer_id} was registered")
        last_end = self.accounts.last_window_end(report.account_id)
        if report.started_at < last_end - WINDOW_OVERLAP_SLACK:
            raise Rejected("INVALID_ARGUMENT", f"the window overlaps account {report.account_id[:12]}'s previous "
                                               f"one by {last_end - report.started_at:.1f} s")
        device = report.device_class.split(":", 1)[0]
        peak = PEAK_FLOPS.get(device)
        if peak is None:
            raise Rejected("INVALID_ARGUMENT", f"unknown device class {report.device_class!r}")
        most = report.wall_time * peak / self.flops_per_sample
        if report.num_samples > most:
            raise Rejected("INVALID_ARGUMENT", f"{report.num_samples} samples in {report.wall_time:.2f}s is not "
                                               f"plausible on {device} (at most {most:.0f})")
