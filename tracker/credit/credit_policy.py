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

from potluck.entries import STRIKES_TO_FORFEIT
from potluck.proto.ledger_pb2 import Ban, Forfeit, LedgerEntry, Strike, Vest
from potluck.proto.manifest_pb2 import CreditPolicy as CreditPolicyMessage
from potluck.tracker.credit.account_state import AccountState
from potluck.tracker.credit.accounts import Accounts
from potluck.tracker.credit.verdict import Outcome, Verdict


class CreditPolicy:
    """Decides checks, vesting and penalties for every account of one swarm, on the accounts' shared state."""

    def __init__(self, policy: CreditPolicyMessage, *, origin: str, check_key: bytes, accounts: Accounts):
        self.policy, self.origin, self.check_key, self.accounts = policy, origin, check_key, accounts

    def draw(self, report_sha256: bytes) -> float:
        """A number in [0, 1) the node cannot predict: a keyed hash of its report."""
        digest = hmac.new(self.check_key, b"potluck/check-draw/v1\n" + report_sha256, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def should_check(self, account_id: str, report_sha256: bytes) -> bool:
        """New accounts and accounts under scrutiny always; others at the manifest's sampling rate."""
        return self.accounts.get(account_id).scrutiny_left > 0 or self.draw(report_sha256) < self.policy.sampling_rate

    def escrowed(self) -> list[tuple[str, int]]:
        """(account, grant index) of every grant still undecided and not already struck, in ledger order."""
        return sorted(((state.account_id, index) for state in self.accounts.states.values()
                       for index in state.undecided if index not in state.struck), key=lambda item: item[1])

    def hold(self, account_id: str, index: int) -> None:
        """Grant `index` waits for a check again (its earlier one was lost when the tracker stopped)."""
        self.accounts.get(account_id).pending.add(index)

    def on_grant(self, account_id: str, index: int, flops: int, *, checked: bool) -> list[LedgerEntry]:
        """A grant was logged; returns the vest entries it makes due."""
        state = self.accounts.on_grant_logged(account_id, index, flops)
        if checked:
            state.pending.add(index)
        return self._vesting(state)

    def on_check(self, verdict: Verdict) -> list[LedgerEntry]:
        """A check on a grant was decided; returns the entries that follow from it.

        A recomputation that passed proves its own report and nothing else (it counts towards leaving
        scrutiny). A report its check could not be completed on (the verifier gave up on it) never vests,
        and is no evidence against its sender either: it is not struck, and it does not hold up the grants
        after it. A report whose sender could not serve its starting state is a failed check, not this.
        """
        state, index = self.accounts.get(verdict.account_id), verdict.index
        state.pending.discard(index)
        if verdict.outcome is Outcome.UNVERIFIABLE:
            state.unproven.add(index)
            return self._vesting(state)
        if verdict.outcome is Outcome.PASSED:
            return self._vesting(state)
        if verdict.outcome is Outcome.RECOMPUTED:
            state.num_passed_checks += 1
            state.scrutiny_left = max(0, state.scrutiny_left - 1)
            if state.frozen:
                state.clean_checks += 1
                if state.clean_checks >= max(self.policy.new_account_checks, 1):
                    # Enough clean checks under full scrutiny: an isolated failure is forgiven.
                    state.frozen, state.clean_checks = False, 0
                    if not state.forfeited:
                        state.active_strikes = 0
            return self._vesting(state)
        reason = verdict.reason
        self.accounts.on_strike(state, index)
        entries = [self._entry(strike=Strike(account_id=state.account_id, report_index=index, check=verdict.check,
                                             reason=reason))]
        if state.forfeited and not state.ban_decided:
            state.ban_decided = True
            entries += self._forfeit(state, f"cheated again after a forfeit: {reason}")
            entries.append(self._entry(ban=Ban(account_id=state.account_id,
                                               reason=f"cheated again after a forfeit: {reason}")))
        elif state.active_strikes >= STRIKES_TO_FORFEIT and not state.ban_decided:
            state.forfeited = True
            entries += self._forfeit(state, f"{state.active_strikes} failed checks, the last: {reason}")
        return entries

    def _forfeit(self, state: AccountState, reason: str) -> list[LedgerEntry]:
        if not state.undecided:
            return []
        grants = sorted(state.undecided)
        flops = sum(state.undecided.values())
        state.undecided.clear()
        state.accepted_after.clear()
        state.pending.clear()
        state.unproven.clear()
        return [self._entry(forfeit=Forfeit(account_id=state.account_id, grant_indices=grants, flops=flops,
                                            reason=reason))]

    def _vesting(self, state: AccountState) -> list[LedgerEntry]:
        if state.frozen or state.ban_decided:
            return []
        horizon = min(state.pending, default=None)
        # A struck grant never vests (its claim failed a check): it waits in escrow for a forfeit. Nor does
        # one whose check could not be completed: a claim nobody checked that was drawn to be checked.
        due = [g for g in sorted(state.undecided) if g not in state.struck and g not in state.unproven
               and state.accepted_after[g] >= self.policy.escrow_depth and (horizon is None or g < horizon)]
        if not due:
            return []
        flops = sum(state.undecided.pop(g) for g in due)
        for g in due:
            del state.accepted_after[g]
        return [self._entry(vest=Vest(account_id=state.account_id, grant_indices=due, flops=flops))]

    def _entry(self, **kind) -> LedgerEntry:
        return LedgerEntry(origin=self.origin, **kind)
