"""The tracker's side of verification: what to check, the verifier's verdicts, and what follows.

Every accepted report becomes a job for the verifier (stage (b) always; stage (c) when the keyed
draw or the account's scrutiny says so) and stays pending until its verdict arrives. Attestations
carried in a report are checked here at once: a forged one is a failed check. Verdicts go through
the credit policy, whose vest, strike, forfeit and ban entries are appended to the ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import threading
import time

from potluck.errors import VerificationError
from potluck.group_process import GroupProcess
from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.report_pb2 import ContributionReport
from potluck.tracker.credit import Accounts, CreditPolicy, Outcome, Verdict
from potluck.tracker.intake import Attestations, LoggedGrant
from potluck.tracker.ledger import LedgerWriter
from potluck.tracker.swarm_stats import SwarmStats
from potluck.tracker.verifier.messages import Job, Spread, VerifierReady, VerifierSpec
from potluck.tracker.verifier.recompute import SEGMENTS_ON_SUSPICION, pick_segments
from potluck.tracker.verifier.verifier import run_verifier

logger = logging.getLogger(__name__)

VERIFIER_START_TIMEOUT = 120.0
VERIFIER_STOP_TIMEOUT = 10.0


def check_attestations(attestations: Attestations, accounts: Accounts) -> None:
    """Each groupmate's attestation (as `read_attestations` read it) must be signed by the account its
    PeerID is bound to; raise `VerificationError`.

    Its epoch is not held against anyone: hivemind matches averaging groups by run, not by epoch, so
    a peer closing epoch e often averages with one closing e-1 or e+1 (measured on honest swarms).
    """
    if attestations.problem is not None:
        raise VerificationError(attestations.problem)
    for claim in attestations.claims:
        bound = accounts.account_of_peer.get(claim.peer_id)
        if claim.account_id != claim.signer or (bound is not None and bound != claim.signer):
            raise VerificationError(f"attestation for peer {claim.peer_id} is signed by {claim.signer[:12]}, "
                                    f"not by the account it is bound to")


class Verification:
    """Feeds the verifier and turns its verdicts into ledger entries (and its spreads into `stats`)."""

    def __init__(self, *, policy: CreditPolicy, writer: LedgerWriter, spec: VerifierSpec | None, stats: SwarmStats):
        self.policy, self.accounts, self.writer, self.spec, self.stats = policy, policy.accounts, writer, spec, stats
        self.process: GroupProcess | None = None
        self.jobs = None
        self.reader: threading.Thread | None = None

    async def start(self) -> None:
        if self.spec is None:
            return
        self.loop = asyncio.get_running_loop()
        self.jobs = multiprocessing.get_context("fork").Queue()
        self.process = GroupProcess(run_verifier, self.spec, self.jobs, name="potluck-verifier").start()
        event = await asyncio.to_thread(self.process.next_event, VERIFIER_START_TIMEOUT)
        if not isinstance(event, VerifierReady):
            self.process.kill()
            raise VerificationError("the verifier did not start (is the swarm's bootstrap peer reachable?)")
        self.reader = threading.Thread(target=self._read_verdicts, daemon=True, name="verdicts")
        self.reader.start()

    async def stop(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(self.process.stop, VERIFIER_STOP_TIMEOUT)
            self.reader.join(timeout=5)

    async def on_grants(self, grants: list[LoggedGrant]) -> None:
        """Grants were logged: schedule their checks (or, with no verifier, let the policy vest on depth alone)."""
        entries = []
        for grant in grants:
            account = grant.report.account_id
            checked = self.process is not None
            entries += self.policy.on_grant(account, grant.index, grant.flops, checked=checked)
            try:
                check_attestations(grant.attestations, self.accounts)
            except VerificationError as e:
                entries += self.policy.on_check(Verdict(index=grant.index, account_id=account,
                                                        outcome=Outcome.FAILED, check="attestation", reason=str(e)))
                checked = False
            if checked:
                self._queue(grant.index, grant.envelope, grant.report)
        await self._log(entries)

    def recheck(self, index: int, envelope: bytes, report: ContributionReport) -> None:
        """A grant still in escrow when the tracker started: its check, if any was pending, was lost with
        the process before, so it is checked again (and holds vesting until then), as a new grant is."""
        if self.process is not None:
            self.policy.hold(report.account_id, index)
            self._queue(index, envelope, report)

    def _queue(self, index: int, envelope: bytes, report: ContributionReport) -> None:
        digest = hashlib.sha256(envelope).digest()
        sampled = self.policy.should_check(report.account_id, digest)
        segments = tuple(pick_segments(self.policy.check_key, digest, len(report.losses), SEGMENTS_ON_SUSPICION))
        self.jobs.put(Job(index=index, envelope=envelope, segments=segments, sampled=sampled,
                          queued_at=time.monotonic()))

    def _read_verdicts(self) -> None:
        while not self.process.exited():
            event = self.process.next_event(0.5)
            if isinstance(event, Verdict):
                asyncio.run_coroutine_threadsafe(self._on_verdict(event), self.loop)
            elif isinstance(event, Spread):
                logger.info("epoch %d: the %d volunteers' parameters lie within %.2g of their mean (relative to "
                            "its norm)", event.epoch, event.num_peers, event.relative)
                self.loop.call_soon_threadsafe(self.stats.record_spread, event.epoch, event.num_peers, event.relative)

    async def _on_verdict(self, verdict: Verdict) -> None:
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
