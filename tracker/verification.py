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
import threading
import time

from potluck.errors import VerificationError
from potluck.group_process import GroupProcess
from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.report_pb2 import ContributionReport
from potluck.tracker.accounts import Accounts
from potluck.tracker.credit_policy import CreditPolicy
from potluck.tracker.opening import Attesters
from potluck.tracker.recompute import SEGMENTS_ON_SUSPICION, pick_segments
from potluck.tracker.swarm_stats import SwarmStats
from potluck.tracker.verifier import Job, VerifierSpec, run_verifier
from potluck.tracker.writer import LedgerWriter

logger = logging.getLogger(__name__)

VERIFIER_START_TIMEOUT = 120.0
VERIFIER_STOP_TIMEOUT = 10.0


def check_attestations(attesters: Attesters, accounts: Accounts) -> None:
    """Each groupmate's attestation (as `opening.read_attestations` read it) must be signed by the account
    its PeerID is bound to.

    Its epoch is not held against anyone: hivemind matches averaging groups by run, not by epoch, so
    a peer closing epoch e often averages with one closing e-1 or e+1 (measured on honest swarms).
    """
    if isinstance(attesters, str):
        raise VerificationError(attesters)
    for signer, peer_id, account_id in attesters:
        bound = accounts.account_of_peer.get(peer_id)
        if account_id != signer or (bound is not None and bound != signer):
            raise VerificationError(f"attestation for peer {peer_id} is signed by {signer[:12]}, "
                                    f"not by the account it is bound to")


class Verification:
    """Feeds the verifier and turns its verdicts into ledger entries (and its spreads into `stats`)."""

    def __init__(self, *, policy: CreditPolicy, accounts: Accounts, writer: LedgerWriter,
                 spec: VerifierSpec | None, stats: SwarmStats):
        self.policy, self.accounts, self.writer, self.spec, self.stats = policy, accounts, writer, spec, stats
        self.process: GroupProcess | None = None
        self.jobs = None
        self.reader: threading.Thread | None = None
        self.verdicts: list[dict] = []
        self.cpu_seconds = 0.0

    async def start(self) -> None:
        if self.spec is None:
            return
        import multiprocessing

        self.loop = asyncio.get_running_loop()
        self.jobs = multiprocessing.get_context("fork").Queue()
        self.process = GroupProcess(run_verifier, self.spec, self.jobs, name="potluck-verifier").start()
        event = await asyncio.to_thread(self.process.next_event, VERIFIER_START_TIMEOUT)
        if event is None or event[0] != "ready":
            self.process.kill()
            raise VerificationError("the verifier did not start (is the swarm's bootstrap peer reachable?)")
        self.reader = threading.Thread(target=self._read_verdicts, daemon=True, name="verdicts")
        self.reader.start()

    async def stop(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(self.process.stop, VERIFIER_STOP_TIMEOUT)
            self.reader.join(timeout=5)

    async def on_grants(self, grants: list[tuple[int, bytes, ContributionReport, int, Attesters]]) -> None:
        """Grants were logged, each (index, report envelope, report, flops, its attestations as read): schedule
        their checks (or, with no verifier, let the policy vest on depth alone)."""
        entries = []
        for index, envelope, report, flops, attesters in grants:
            account = report.account_id
            checked = self.process is not None
            entries += self.policy.on_grant(account, index, flops, checked=checked)
            try:
                check_attestations(attesters, self.accounts)
            except VerificationError as e:
                entries += self.policy.on_check(account, index, passed=False, check="attestation", reason=str(e))
                checked = False
            if checked:
                self._queue(index, envelope, report)
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
            if event is not None and event[0] == "verdict":
                asyncio.run_coroutine_threadsafe(self._on_verdict(event[1]), self.loop)
            elif event is not None and event[0] == "spread":
                epoch, num_peers, relative = event[1]
                logger.info("epoch %d: the %d volunteers' parameters lie within %.2g of their mean (relative to "
                            "its norm)", epoch, num_peers, relative)
                self.loop.call_soon_threadsafe(self.stats.record_spread, epoch, num_peers, relative)

    async def _on_verdict(self, verdict: dict) -> None:
        self.verdicts.append(verdict)
        self.cpu_seconds += verdict["cpu_seconds"]
        passed = verdict["passed"]
        if passed is None:
            logger.info("report at %d: %s", verdict["index"], verdict["reason"])
        elif not passed:
            logger.warning("report at %d failed its %s check: %s", verdict["index"], verdict["check"],
                           verdict["reason"])
        entries = self.policy.on_check(verdict["account_id"], verdict["index"], passed=passed is not False,
                                       check=verdict["check"], reason=verdict["reason"],
                                       recomputed=bool(passed) and verdict["recomputed"],
                                       unverifiable=passed is None)
        await self._log(entries)

    async def _log(self, entries: list[LedgerEntry]) -> None:
        logged_at_ms = int(time.time() * 1000)
        for entry in entries:
            entry.logged_at_ms = logged_at_ms
        await self.writer.append_many(entries)
        for entry in entries:
            self.accounts.apply(entry)
