"""The credit policy as a state machine: what is checked, when credit vests, what failed checks cost.
Every entry it produces must also be accepted by the auditor's `Balances`."""

import os

import pytest

from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.manifest_pb2 import CreditPolicy as Policy
from potluck.tracker.credit_policy import CreditPolicy
from potluck.tracker.ledger.entries import Balances, grant_entry

pytestmark = pytest.mark.timeout(30)
ALICE = "a" * 64
POLICY = Policy(version=1, flops_per_credit=10**15, sampling_rate=0.1, escrow_depth=3, new_account_checks=2)


class Log:
    """Feeds the policy like the tracker does, and folds every entry into the auditor's Balances."""

    def __init__(self):
        self.policy = CreditPolicy(POLICY, origin="o", check_key=b"k" * 32)
        self.balances = Balances()
        self.entries: list[LedgerEntry] = []

    def append(self, entry: LedgerEntry) -> int:
        index = len(self.entries)
        self.entries.append(entry)
        self.balances.apply(index, entry)
        return index

    def grant(self, checked: bool = False) -> int:
        index = self.append(grant_entry(origin="o", report=os.urandom(16), account_id=ALICE, num_samples=10,
                                        flops_per_sample=100, policy_version=1, flops_per_credit=10**15,
                                        logged_at_ms=0))
        for entry in self.policy.on_grant(ALICE, index, 1000, checked=checked):
            self.append(entry)
        return index

    def check(self, index: int, passed: bool) -> list[str]:
        produced = self.policy.on_check(ALICE, index, passed=passed, check="recompute", reason="losses differ",
                                        recomputed=passed)
        for entry in produced:
            self.append(entry)
        return [e.WhichOneof("kind") for e in produced]

    @property
    def alice(self):
        return self.balances.accounts[ALICE]


def test_new_accounts_are_always_checked_then_sampled():
    policy = CreditPolicy(POLICY, origin="o", check_key=b"k" * 32)
    assert policy.should_check(ALICE, os.urandom(32))
    for index in range(2):
        policy.on_grant(ALICE, index, 1, checked=True)
        policy.on_check(ALICE, index, passed=True, check="progress", reason="")  # not a recomputation
    assert policy.should_check(ALICE, os.urandom(32))
    for index in range(2):
        policy.on_check(ALICE, index, passed=True, check="recompute", reason="", recomputed=True)
    draws = [policy.should_check(ALICE, os.urandom(32)) for _ in range(20000)]
    assert 0.09 < sum(draws) / len(draws) < 0.11


def test_the_draw_is_keyed():
    report = os.urandom(32)
    ours = CreditPolicy(POLICY, origin="o", check_key=b"k" * 32)
    theirs = CreditPolicy(POLICY, origin="o", check_key=b"x" * 32)
    assert ours.draw(report) == ours.draw(report) != theirs.draw(report)


def test_grants_vest_after_the_escrow_depth_once_checks_are_decided():
    log = Log()
    first = log.grant(checked=True)
    for _ in range(3):
        log.grant()
    assert log.alice.vested_flops == 0  # deep enough, but its check is still pending
    log.check(first, passed=True)
    assert log.alice.vested_flops == 10 * 100 and log.alice.escrow_flops == 3 * 1000


def test_one_failed_check_freezes_vesting_until_clean_checks_forgive_it():
    log = Log()
    grants = [log.grant(checked=True) for _ in range(5)]
    assert log.check(grants[0], passed=False) == ["strike"]
    for index in grants[1:]:
        log.check(index, passed=True)
    assert log.alice.vested_flops > 0 and log.alice.forfeited_flops == 0


def test_two_strikes_forfeit_the_escrow_and_a_third_bans():
    log = Log()
    grants = [log.grant(checked=True) for _ in range(4)]
    assert log.check(grants[0], passed=False) == ["strike"]
    assert log.check(grants[1], passed=False) == ["strike", "forfeit"]
    assert log.alice.escrow_flops == 0 and log.alice.forfeited_flops == 4 * 1000 and log.alice.vested_flops == 0
    later = log.grant(checked=True)
    assert log.check(later, passed=False) == ["strike", "forfeit", "ban"]
    assert log.alice.banned and log.alice.vested_flops == 0


def test_an_unverifiable_check_holds_vesting_until_a_later_recomputation_passes():
    log = Log()
    first = log.grant(checked=True)
    later = [log.grant(checked=True) for _ in range(3)]
    decisions = log.policy.on_check(ALICE, first, passed=True, check="recompute", reason="no state",
                                    unverifiable=True)
    for index in later[:2]:
        decisions += log.policy.on_check(ALICE, index, passed=True, check="progress", reason="")
    assert decisions == []  # deep enough and decided, but nothing proves the first grant yet
    for entry in log.policy.on_check(ALICE, later[2], passed=True, check="recompute", reason="", recomputed=True):
        log.append(entry)
    assert log.alice.vested_flops == 10 * 100  # the first grant has the escrow depth (3) of later ones


def test_after_a_restart_escrowed_grants_are_held_for_a_check_but_a_struck_one_is_not_checked_twice():
    log = Log()
    struck, clean = log.grant(checked=True), log.grant(checked=True)
    assert log.check(struck, passed=False) == ["strike"]
    restarted = CreditPolicy(POLICY, origin="o", check_key=b"k" * 32)
    for index, entry in enumerate(log.entries):
        restarted.restore(index, entry)
    # The strike is in the ledger: checking that grant again could strike it twice and forfeit the escrow.
    assert restarted.escrowed() == [(ALICE, clean)]
    restarted.hold(ALICE, clean)
    assert restarted.account(ALICE).pending == {clean}
