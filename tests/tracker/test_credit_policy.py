"""The credit policy as a state machine: what is checked, when credit vests, what failed checks cost.
Every entry it produces must also be accepted by the auditor's `Balances`."""

import os

import pytest

from potluck.entries import Balances, grant_entry
from potluck.identity import AccountKey
from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.manifest_pb2 import CreditPolicy as Policy
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import PURPOSE_REPORT, seal
from potluck.tracker.credit import Accounts, CreditPolicy, Outcome, Verdict
from potluck.tracker.credit.verdict import MAX_REASON_CHARS

pytestmark = pytest.mark.timeout(30)
KEY = AccountKey.generate()
ALICE = KEY.account_id
POLICY = Policy(version=1, flops_per_credit=10**15, sampling_rate=0.5, escrow_depth=3, new_account_checks=2)


def new_policy(check_key: bytes = b"k" * 32) -> CreditPolicy:
    return CreditPolicy(POLICY, origin="o", check_key=check_key, accounts=Accounts("o", POLICY))


def verdict(index: int, outcome: Outcome, check: str = "recompute", reason: str = "") -> Verdict:
    return Verdict(index=index, account_id=ALICE, outcome=outcome, check=check, reason=reason)


def signed_report(sequence: int) -> bytes:
    report = ContributionReport(origin="o", account_id=ALICE, sequence=sequence, epoch=sequence, num_samples=10)
    return seal(report.SerializeToString(deterministic=True), purpose=PURPOSE_REPORT, origin="o",
                signing_key=KEY.signing_key)


class Log:
    """Feeds the policy like the tracker does (each entry folded into its accounts as the ledger would), and
    folds every entry into the auditor's Balances."""

    def __init__(self):
        self.policy = new_policy()
        self.balances = Balances()
        self.entries: list[LedgerEntry] = []

    def append(self, entry: LedgerEntry) -> int:
        index = len(self.entries)
        self.entries.append(entry)
        self.policy.accounts.apply(index, entry)
        self.balances.apply(index, entry)
        return index

    def grant(self, checked: bool = False) -> int:
        index = self.append(grant_entry(origin="o", report=signed_report(len(self.entries) + 1), account_id=ALICE,
                                        num_samples=10, flops_per_sample=100, policy_version=1,
                                        flops_per_credit=10**15, logged_at_ms=0))
        for entry in self.policy.on_grant(ALICE, index, 1000, checked=checked):
            self.append(entry)
        return index

    def check(self, index: int, passed: bool) -> list[str]:
        outcome = Outcome.RECOMPUTED if passed else Outcome.FAILED
        produced = self.policy.on_check(verdict(index, outcome, reason="losses differ"))
        for entry in produced:
            self.append(entry)
        return [e.WhichOneof("kind") for e in produced]

    @property
    def alice(self):
        return self.balances.accounts[ALICE]


def test_new_accounts_are_always_checked_then_sampled_once_their_escrow_covers_a_claim():
    log = Log()
    policy = log.policy
    grants = [log.grant(checked=True) for _ in range(6)]
    assert policy.should_check(ALICE, os.urandom(32), grants[-1])  # new: under scrutiny
    for index in grants[:2]:
        policy.on_check(verdict(index, Outcome.PASSED, check="progress"))  # not a recomputation
    assert policy.should_check(ALICE, os.urandom(32), grants[-1])
    for index in grants[:2]:
        policy.on_check(verdict(index, Outcome.RECOMPUTED))
    # Out of scrutiny, with 5 other grants of 1000 FLOPs at stake: 5000 >= 1000 / (0.5 x 0.95), so sampled.
    draws = [policy.should_check(ALICE, os.urandom(32), grants[-1]) for _ in range(20000)]
    assert 0.485 < sum(draws) / len(draws) < 0.515


def test_a_claim_the_collateral_does_not_cover_is_always_checked():
    log = Log()
    grants = [log.grant(checked=True) for _ in range(6)]
    for index in grants[:2]:
        log.policy.on_check(verdict(index, Outcome.RECOMPUTED))
    state = log.policy.accounts.get(ALICE)
    state.undecided[grants[-1]] = 5000  # five times the others
    # The 3 others in escrow; the 2 recomputed ones vested, and a passed recomputation puts them out of reach.
    assert log.policy.collateral(state, excluding=grants[-1]) == 3000
    assert all(log.policy.should_check(ALICE, os.urandom(32), grants[-1]) for _ in range(2000))
    state.undecided[grants[-1]] = 1000
    assert not all(log.policy.should_check(ALICE, os.urandom(32), grants[-1]) for _ in range(2000))


def test_the_draw_is_keyed():
    report = os.urandom(32)
    ours, theirs = new_policy(b"k" * 32), new_policy(b"x" * 32)
    assert ours.draw(report) == ours.draw(report) != theirs.draw(report)


def test_grants_vest_after_the_escrow_depth_once_checks_are_decided():
    log = Log()
    first = log.grant(checked=True)
    for _ in range(3):
        log.grant()
    assert log.alice.vested_flops == 0  # deep enough, but its check is still pending
    log.check(first, passed=True)
    assert log.alice.vested_flops == 10 * 100 and log.alice.escrow_flops == 3 * 1000


def test_a_failed_check_forfeits_the_escrow_then_clean_checks_forgive_it():
    log = Log()
    grants = [log.grant(checked=True) for _ in range(3)]
    assert log.check(grants[0], passed=False) == ["strike", "forfeit"]
    assert log.alice.forfeited_flops == 3 * 1000 and log.alice.escrow_flops == 0
    assert grants[0] in {i for e in log.entries if e.WhichOneof("kind") == "forfeit" for i in e.forfeit.grant_indices}
    later = [log.grant(checked=True) for _ in range(8)]
    for index in later:
        log.check(index, passed=True)  # two clean checks under scrutiny forgive it
    assert log.alice.vested_flops > 0 and not log.alice.banned


def test_a_second_failure_before_it_is_forgiven_bans():
    log = Log()
    grants = [log.grant(checked=True) for _ in range(4)]
    assert log.check(grants[0], passed=False) == ["strike", "forfeit"]
    later = log.grant(checked=True)
    assert log.check(later, passed=False) == ["strike", "forfeit", "ban"]
    assert log.alice.banned and log.alice.vested_flops == 0 and log.alice.forfeited_flops == 5 * 1000


def test_a_failed_check_claws_back_what_vested_since_the_last_passed_recomputation():
    log = Log()
    grants = [log.grant(checked=True) for _ in range(12)]
    for index in grants[:2]:
        log.check(index, passed=True)  # recomputed: these two are proven
    for index in grants[2:6]:
        for entry in log.policy.on_check(verdict(index, Outcome.PASSED, check="progress")):  # not drawn
            log.append(entry)
    vested = {i for e in log.entries if e.WhichOneof("kind") == "vest" for i in e.vest.grant_indices}
    assert set(grants[:6]) <= vested, vested
    assert log.check(grants[6], passed=False) == ["strike", "forfeit"]
    [forfeit] = [e.forfeit for e in log.entries if e.WhichOneof("kind") == "forfeit"]
    assert list(forfeit.clawed_back_indices) == grants[2:6] and forfeit.clawed_back_flops == 4 * 1000
    assert log.alice.vested_flops == 2 * 1000  # the proven grants stay vested
    assert log.alice.forfeited_flops == 4 * 1000 + 6 * 1000  # clawed back, and the escrow


def test_a_check_given_up_never_vests_holds_up_nothing_and_a_pass_proves_only_its_own_report():
    log = Log()
    given_up = log.grant(checked=True)
    later = [log.grant(checked=True) for _ in range(4)]
    for entry in log.policy.on_check(verdict(given_up, Outcome.UNVERIFIABLE, reason="the verifier crashed on it")):
        log.append(entry)
    assert log.alice.vested_flops == 0 and log.alice.strikes == 0  # no credit, and no charge to its sender
    for index in later:
        assert log.check(index, passed=True) in ([], ["vest"])
    # later[0] has the escrow depth (3) of later grants and its check passed: it vests. The grant before it
    # does not, whatever passed after it (issue 11: one pass used to prove every earlier grant).
    assert log.alice.vested_flops == 1000
    assert given_up in log.policy.accounts.get(ALICE).undecided
    for _ in range(5):
        log.grant(checked=False)
    assert log.alice.vested_flops == 6 * 1000  # every later grant with 3 after it: it holds up nothing


def test_after_a_restart_escrowed_grants_are_held_for_a_check_but_a_struck_one_is_not_checked_twice():
    log = Log()
    struck = log.grant(checked=True)
    assert log.check(struck, passed=False) == ["strike", "forfeit"]
    clean = log.grant(checked=True)
    restarted = new_policy()
    for index, entry in enumerate(log.entries):  # as the ledger restores its stored entries at start-up
        restarted.accounts.restore(index, entry)
    assert restarted.escrowed() == [(ALICE, clean)]
    restarted.hold(ALICE, clean)
    assert restarted.accounts.get(ALICE).pending == {clean}


def test_a_reason_of_any_size_fits_in_the_entries_it_decides(tmp_path):
    """A failed check's reason echoes what the report and its peer said; an attacker sizes it. Every entry
    it decides (strike, forfeit, ban) must still fit a ledger entry, or the writer's whole batch fails."""
    from potluck.proto.wire import MAX_ENTRY_BYTES
    from potluck.tracker.ledger import Ledger, load_or_create_log_key, open_store

    log = Log()
    grants = [log.grant(checked=True) for _ in range(4)]
    huge = "x" * (MAX_ENTRY_BYTES + 1)
    decided = log.policy.on_check(verdict(grants[0], Outcome.FAILED, reason=huge))
    decided += log.policy.on_check(verdict(grants[1], Outcome.FAILED, reason=huge))
    assert [e.WhichOneof("kind") for e in decided] == ["strike", "forfeit", "strike", "ban"]
    for entry in decided:
        body = getattr(entry, entry.WhichOneof("kind"))
        assert len(body.reason) <= 2 * MAX_REASON_CHARS and "characters cut" in body.reason
    ledger = Ledger(open_store(tmp_path / "l.sqlite"), origin="o", log_key=load_or_create_log_key(tmp_path, "o"))
    assert len(ledger.append(log.entries + decided)) == len(log.entries) + len(decided)
