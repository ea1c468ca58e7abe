"""The tracker's side of verification: what to check, the verifier's verdicts, and what follows.

Every accepted report becomes a job for the verifier (stage (b) always; stage (c) when the keyed
draw or the account's scrutiny says so) and stays pending until its verdict arrives. Attestations
carried in a report are checked here at once: a false one is a failed check of its signer. Verdicts go through
the credit policy, whose vest, strike, forfeit and ban entries are appended to the ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import parse_envelope
from potluck.tracker.credit import Accounts, CreditPolicy, Outcome, Verdict
from potluck.tracker.intake import Attestations, LoggedGrant
from potluck.tracker.ledger import LedgerWriter
from potluck.tracker.swarm_stats import SwarmStats
from potluck.tracker.verifier.messages import HeldOutLoss, Job, Spread, VerifierSpec
from potluck.tracker.verifier.recompute import SEGMENTS_ON_SUSPICION, pick_segments
from potluck.tracker.verifier.supervised_verifier import SupervisedVerifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FalseAttestation:
    """An attestation whose signature holds but whose statement does not: its signer named an account
    other than its own, or a peer bound to another account."""

    signer: str
    peer_owner: str | None  # the account the named peer is bound to, if any
    reason: str
    sha256: bytes  # of the attestation


def check_attestations(attestations: Attestations, accounts: Accounts) -> list[FalseAttestation]:
    """The false statements among a report's attestations (as `read_attestations` read them).

    An honest attestation names its signer's account and a peer bound to it. Its epoch is not held
    against anyone: hivemind matches averaging groups by run, not by epoch, so a peer closing epoch
    e often averages with one closing e-1 or e+1 (measured on honest swarms).
    """
    found = []
    for claim in attestations.claims:
        bound = accounts.account_of_peer.get(claim.peer_id)
        if claim.names_its_signer and bound in (None, claim.signer):
            continue
        found.append(FalseAttestation(signer=claim.signer, peer_owner=bound, sha256=claim.sha256, reason=(
            f"signed an attestation for peer {claim.peer_id} naming account {claim.account_id[:12]}; "
            f"the peer is bound to {bound[:12] if bound else 'no account'}")))
    return found


class Verification:
    """Feeds the verifier and turns its verdicts into ledger entries (and its spreads into `stats`)."""

    def __init__(self, *, policy: CreditPolicy, writer: LedgerWriter, spec: VerifierSpec | None, stats: SwarmStats):
        self.policy, self.accounts, self.writer, self.spec, self.stats = policy, policy.accounts, writer, spec, stats
        self.verifier: SupervisedVerifier | None = None
        self.tasks: set[asyncio.Task] = set()
        # False attestations already struck (sha256): one statement is one strike. Kept in memory: after a
        # restart, a statement carried again can cost its signer one more strike.
        self.struck_attestations: set[bytes] = set()

    async def start(self) -> None:
        if self.spec is None:
            return
        self.verifier = SupervisedVerifier(self.spec, self._on_event)
        await self.verifier.start()
        self.stats.verifier_health = self.verifier.health

    async def stop(self) -> None:
        if self.verifier is not None:
            await self.verifier.stop()

    async def on_grants(self, grants: list[LoggedGrant]) -> None:
        """Grants were logged: schedule their checks (or, with no verifier, let the policy vest on depth alone)."""
        entries = []
        for grant in grants:
            account = grant.report.account_id
            checked = self.verifier is not None
            entries += self.policy.on_grant(account, grant.index, grant.flops, checked=checked)
            entries += self._on_false_attestations(grant)
            if checked:
                self._queue(grant.index, grant.envelope, grant.report)
        await self._log(entries)

    def _on_false_attestations(self, grant: LoggedGrant) -> list[LedgerEntry]:
        """What the false attestations a report carried cost, and whom.

        Never the reporter: it signed only that it gathered them (a griefer's forged attestations
        would otherwise get every honest groupmate struck). A registered account that signed a false
        statement is struck for it, once per statement however often it is carried: that is evidence
        with its own signature. The account the named peer is bound to signed nothing, and who sent
        what in a round is only the reporter's word (hivemind's leader relays it), so it is only
        recorded against that account for the lead to see (`AccountState.named_in_false_attestations`);
        anything more would let any reporter harm any account for free.
        """
        entries, struck_here = [], set()
        for false in check_attestations(grant.attestations, self.accounts):
            logger.warning("report at %d carries a false attestation: %s %s", grant.index, false.signer[:12],
                           false.reason)
            if false.peer_owner is not None and false.peer_owner != false.signer:
                self.accounts.get(false.peer_owner).named_in_false_attestations += 1
            signer = self.accounts.find(false.signer)
            # At most one strike per signer per report, none once its ban is decided (there is nothing
            # left to take): else one report of 64 attestations would append 64 ledger entries, and a
            # banned account could keep signing them forever.
            if (signer is not None and signer.peer_ids and not signer.ban_decided
                    and false.signer not in struck_here and false.sha256 not in self.struck_attestations):
                struck_here.add(false.signer)
                self.struck_attestations.add(false.sha256)
                entries += self.policy.on_check(Verdict(
                    index=grant.index, account_id=false.signer, outcome=Outcome.FAILED, check="attestation",
                    reason=f"{false.reason} (carried by the report at {grant.index})"))
        if grant.attestations.unreadable:
            logger.info("report at %d carries %d attestations that do not verify; ignored", grant.index,
                        grant.attestations.unreadable)
        return entries

    def recheck(self, index: int, envelope: bytes, report: ContributionReport) -> None:
        """A grant still in escrow when the tracker started: its check, if any was pending, was lost with
        the process before, so it is checked again (and holds vesting until then), as a new grant is."""
        if self.verifier is not None:
            self.policy.hold(report.account_id, index)
            self._queue(index, envelope, report)

    def on_landed_late(self, late: list[tuple[int, LedgerEntry]]) -> None:
        """Entries whose append failed although they were committed (a later append found them): the ledger
        restored them into the accounts, as at a start; a grant among them is checked, as after a restart."""
        for index, entry in late:
            if entry.WhichOneof("kind") == "grant":
                envelope = entry.grant.report
                self.recheck(index, envelope, ContributionReport.FromString(parse_envelope(envelope).payload))

    def _queue(self, index: int, envelope: bytes, report: ContributionReport) -> None:
        digest = hashlib.sha256(envelope).digest()
        sampled = self.policy.should_check(report.account_id, digest, index)
        segments = tuple(pick_segments(self.policy.check_key, digest, len(report.losses), SEGMENTS_ON_SUSPICION))
        account = self.accounts.get(report.account_id)
        account.awaiting.add(index)
        self.verifier.submit(Job(index=index, envelope=envelope, segments=segments, sampled=sampled,
                                 established=account.last_proof >= 0))

    def _on_event(self, event) -> None:
        """What the verifier sent (on the event loop)."""
        if isinstance(event, Verdict):
            task = asyncio.create_task(self._on_verdict(event))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif isinstance(event, Spread):
            logger.info("epoch %d: the %d volunteers' parameters lie within %.2g of their mean (relative to "
                        "its norm)", event.epoch, event.num_peers, event.relative)
            self.stats.record_spread(event.epoch, event.num_peers, event.relative)
        elif isinstance(event, HeldOutLoss):
            logger.info("epoch %d: held-out loss %.4f", event.epoch, event.loss)
            if self.stats.held_out is None or event.epoch >= self.stats.held_out[0]:
                self.stats.held_out = (event.epoch, event.loss)

    async def _on_verdict(self, verdict: Verdict) -> None:
        self.accounts.get(verdict.account_id).awaiting.discard(verdict.index)
        if verdict.outcome is Outcome.UNVERIFIABLE:
            logger.info("report at %d: %s", verdict.index, verdict.reason)
        elif verdict.outcome is Outcome.FAILED:
            logger.warning("report at %d failed its %s check: %s", verdict.index, verdict.check, verdict.reason)
        await self._log(self.policy.on_check(verdict))

    async def _log(self, entries: list[LedgerEntry]) -> None:
        logged_at_ms = int(time.time() * 1000)
        for entry in entries:
            entry.logged_at_ms = logged_at_ms
        await self.writer.append_many(entries)
