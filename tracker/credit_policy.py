"""When credits vest and what a failed check costs: the manifest's credit policy as a state machine.

A grant sits in escrow until its account has made `escrow_depth` further accepted reports, every
recomputation check due on the reports up to then has been decided, and none of them failed.
Penalties are graded: a failed check is a strike (the account goes back under full scrutiny and
its escrow stops vesting; enough clean checks forgive it); a second strike confirms cheating and
forfeits the whole escrow; a failed check after a forfeit bans the account. Decisions come back as ledger entries;
the policy never edits the past.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from potluck.proto.ledger_pb2 import Ban, Forfeit, LedgerEntry, Strike, Vest
from potluck.proto.manifest_pb2 import CreditPolicy as CreditPolicyMessage

STRIKES_TO_FORFEIT = 2


@dataclass
class AccountCredit:
    account_id: str
    escrow: dict[int, int] = field(default_factory=dict)  # grant index -> flops, oldest first
    accepted_after: dict[int, int] = field(default_factory=dict)  # grant index -> later accepted reports
    pending: set[int] = field(default_factory=set)  # grant indices whose check is not decided yet
    # Grants drawn for recomputation that could not be recomputed (the verifier never saw their state):
    # they wait until a later recomputation of the same account passes.
    unproven: set[int] = field(default_factory=set)
    num_reports: int = 0
    num_passed_checks: int = 0
    scrutiny_left: int = 0  # reports still checked at rate 1 (new accounts, accounts with a strike)
    strikes: int = 0
    struck: set[int] = field(default_factory=set)  # grant indices that already earned a strike
    frozen: bool = False  # after a strike, nothing vests until enough clean checks pass
    clean_checks: int = 0
    forfeited: bool = False
    banned: bool = False


class CreditPolicy:
    """Decides checks, vesting and penalties for every account of one swarm."""

    def __init__(self, policy: CreditPolicyMessage, *, origin: str, check_key: bytes):
        self.policy, self.origin, self.check_key = policy, origin, check_key
        self.accounts: dict[str, AccountCredit] = {}

    def account(self, account_id: str) -> AccountCredit:
        if account_id not in self.accounts:
            self.accounts[account_id] = AccountCredit(account_id, scrutiny_left=self.policy.new_account_checks)
        return self.accounts[account_id]

    def draw(self, report_sha256: bytes) -> float:
        """A number in [0, 1) the node cannot predict: a keyed hash of its report."""
        digest = hmac.new(self.check_key, b"potluck/check-draw/v1\n" + report_sha256, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def should_check(self, account_id: str, report_sha256: bytes) -> bool:
        """New accounts and accounts under scrutiny always; others at the manifest's sampling rate."""
        account = self.account(account_id)
        return account.scrutiny_left > 0 or self.draw(report_sha256) < self.policy.sampling_rate

    def escrowed(self) -> list[tuple[str, int]]:
        """(account, grant index) of every grant still in escrow and not already struck, in ledger order."""
        return sorted(((account.account_id, index) for account in self.accounts.values()
                       for index in account.escrow if index not in account.struck), key=lambda item: item[1])

    def hold(self, account_id: str, index: int) -> None:
        """Grant `index` waits for a check again (its earlier one was lost when the tracker stopped)."""
        self.account(account_id).pending.add(index)

    def on_grant(self, account_id: str, index: int, flops: int, *, checked: bool) -> list[LedgerEntry]:
        """A grant was logged; returns the vest entries it makes due."""
        account = self.account(account_id)
        account.num_reports += 1
        for earlier in account.escrow:
            account.accepted_after[earlier] += 1
        account.escrow[index] = flops
        account.accepted_after[index] = 0
        if checked:
            account.pending.add(index)
        return self._vesting(account)

    def on_check(self, account_id: str, index: int, *, passed: bool, check: str, reason: str,
                 recomputed: bool = False, unverifiable: bool = False) -> list[LedgerEntry]:
        """A check on grant `index` was decided; returns the entries that follow from it.

        Only a passed recomputation (`recomputed`) counts towards leaving scrutiny and proves the
        grants before it; a report that could not be recomputed (`unverifiable`) is no evidence
        either way, so it waits for a later one.
        """
        account = self.account(account_id)
        account.pending.discard(index)
        if unverifiable:
            account.unproven.add(index)
            return self._vesting(account)
        if passed:
            if not recomputed:
                return self._vesting(account)
            account.unproven = {g for g in account.unproven if g > index}
            account.num_passed_checks += 1
            account.scrutiny_left = max(0, account.scrutiny_left - 1)
            if account.frozen:
                account.clean_checks += 1
                if account.clean_checks >= max(self.policy.new_account_checks, 1):
                    # Enough clean checks under full scrutiny: an isolated failure is forgiven.
                    account.frozen, account.clean_checks = False, 0
                    if not account.forfeited:
                        account.strikes = 0
            return self._vesting(account)
        account.strikes += 1
        account.frozen, account.clean_checks = True, 0
        account.scrutiny_left = max(account.scrutiny_left, self.policy.new_account_checks, 1)
        entries = [self._entry(strike=Strike(account_id=account_id, report_index=index, check=check, reason=reason))]
        if account.forfeited and not account.banned:
            account.banned = True
            entries += self._forfeit(account, f"cheated again after a forfeit: {reason}")
            entries.append(self._entry(ban=Ban(account_id=account_id, reason=f"cheated again after a forfeit: "
                                                                              f"{reason}")))
        elif account.strikes >= STRIKES_TO_FORFEIT and not account.banned:
            account.forfeited = True
            entries += self._forfeit(account, f"{account.strikes} failed checks, the last: {reason}")
        return entries

    def restore(self, index: int, entry: LedgerEntry) -> None:
        """Fold in an entry already in the ledger (at start-up), producing nothing."""
        kind = entry.WhichOneof("kind")
        body = getattr(entry, kind)
        if kind == "grant":
            account = self.account(body.account_id)
            account.num_reports += 1
            for earlier in account.escrow:
                account.accepted_after[earlier] += 1
            account.escrow[index], account.accepted_after[index] = body.flops, 0
        elif kind in ("vest", "forfeit"):
            account = self.account(body.account_id)
            for grant in body.grant_indices:
                account.escrow.pop(grant, None)
                account.accepted_after.pop(grant, None)
            account.forfeited = account.forfeited or kind == "forfeit"
        elif kind == "strike":
            account = self.account(body.account_id)
            account.strikes += 1
            account.struck.add(body.report_index)
            account.frozen, account.clean_checks = True, 0
            account.scrutiny_left = max(account.scrutiny_left, self.policy.new_account_checks, 1)
        elif kind == "ban":
            self.account(body.account_id).banned = True

    def _forfeit(self, account: AccountCredit, reason: str) -> list[LedgerEntry]:
        if not account.escrow:
            return []
        grants = sorted(account.escrow)
        flops = sum(account.escrow.values())
        account.escrow.clear()
        account.accepted_after.clear()
        account.pending.clear()
        account.unproven.clear()
        return [self._entry(forfeit=Forfeit(account_id=account.account_id, grant_indices=grants, flops=flops,
                                            reason=reason))]

    def _vesting(self, account: AccountCredit) -> list[LedgerEntry]:
        if account.frozen or account.banned:
            return []
        horizon = min(account.pending | account.unproven, default=None)
        due = [g for g in sorted(account.escrow)
               if account.accepted_after[g] >= self.policy.escrow_depth and (horizon is None or g < horizon)]
        if not due:
            return []
        flops = sum(account.escrow.pop(g) for g in due)
        for g in due:
            del account.accepted_after[g]
        return [self._entry(vest=Vest(account_id=account.account_id, grant_indices=due, flops=flops))]

    def _entry(self, **kind) -> LedgerEntry:
        return LedgerEntry(origin=self.origin, **kind)
