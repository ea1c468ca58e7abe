"""When credits vest and what a failed check costs: the manifest's credit policy as a state machine.

A grant sits in escrow until its account has made `escrow_depth` further accepted reports, every
recomputation check due on the reports up to then has been decided, and none of them failed.
A report is sampled for recomputation at the manifest's rate only while the account's collateral
deters cheating on it (deterrence.py, condition (1)); otherwise, and while the account is new or
under scrutiny, it is recomputed. A failed check is a strike that confirms cheating: it forfeits the
account's escrow and claws back what it vested since its last passed recomputation, and puts it
under full scrutiny, frozen, until enough clean checks forgive it; a second strike before that bans
it. Decisions come back as ledger entries; the policy never edits the past.
"""

from __future__ import annotations

import hashlib
import hmac

from potluck.entries import STRIKES_TO_FORFEIT
from potluck.proto.ledger_pb2 import Ban, Forfeit, LedgerEntry, Strike, Vest
from potluck.proto.manifest_pb2 import CreditPolicy as CreditPolicyMessage
from potluck.tracker.credit.account_state import AccountState
from potluck.tracker.credit.accounts import Accounts
from potluck.tracker.credit.deterrence import deters
from potluck.tracker.credit.verdict import Outcome, Verdict


class CreditPolicy:
    """Decides checks, vesting and penalties for every account of one swarm, on the accounts' shared state."""

    def __init__(self, policy: CreditPolicyMessage, *, origin: str, check_key: bytes, accounts: Accounts):
        self.policy, self.origin, self.check_key, self.accounts = policy, origin, check_key, accounts

    def draw(self, report_sha256: bytes) -> float:
        """A number in [0, 1) the node cannot predict: a keyed hash of its report."""
        digest = hmac.new(self.check_key, b"potluck/check-draw/v1\n" + report_sha256, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def should_check(self, account_id: str, report_sha256: bytes, index: int) -> bool:
        """Whether logged grant `index` is recomputed: always for accounts new or under scrutiny, and for
        claims the account's collateral does not cover; otherwise at the manifest's sampling rate."""
        state = self.accounts.get(account_id)
        if state.scrutiny_left > 0:
            return True
        rate = self.policy.sampling_rate
        if not deters(self.collateral(state, excluding=index), state.undecided.get(index, 0), rate,
                      self.policy.data_share_ppm):
            return True
        return self.draw(report_sha256) < rate

    def collateral(self, state: AccountState, *, excluding: int) -> int:
        """What the account would lose to a failed check now: its escrow (but grant `excluding`, and struck
        grants, which never vest anyway) and the credit a strike would claw back."""
        escrow = sum(flops for g, flops in state.undecided.items() if g != excluding and g not in state.struck)
        return escrow + sum(self._clawable(state).values())

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
        reach = self._clawable(state)  # taken before this check leaves `pending`: what its collateral counted
        state.pending.discard(index)
        if verdict.outcome is Outcome.UNVERIFIABLE:
            state.unproven.add(index)
            return self._vesting(state)
        if verdict.outcome is Outcome.PASSED:
            return self._vesting(state)
        if verdict.outcome is Outcome.RECOMPUTED:
            state.num_passed_checks += 1
            state.last_proof = max(state.last_proof, index)
            safe = self._claw_back_cut(state)  # vested grants at or before it are out of a strike's reach
            state.vested_unproven = {g: f for g, f in state.vested_unproven.items() if g > safe}
            state.scrutiny_left = max(0, state.scrutiny_left - 1)
            if state.frozen:
                state.clean_checks += 1
                if state.clean_checks >= max(self.policy.new_account_checks, 1):
                    # Enough clean checks under full scrutiny: it paid for the failure, which is forgiven.
                    state.frozen, state.clean_checks = False, 0
                    state.active_strikes, state.forfeited = 0, False
            return self._vesting(state)
        reason = verdict.reason
        self.accounts.on_strike(state, index)
        entries = [self._entry(strike=Strike(account_id=state.account_id, report_index=index, check=verdict.check,
                                             reason=reason))]
        if state.forfeited and not state.ban_decided:
            state.ban_decided = True
            entries += self._forfeit(state, f"cheated again after a forfeit: {reason}", reach)
            entries.append(self._entry(ban=Ban(account_id=state.account_id,
                                               reason=f"cheated again after a forfeit: {reason}")))
        elif state.active_strikes >= STRIKES_TO_FORFEIT and not state.ban_decided:
            state.forfeited = True
            entries += self._forfeit(state, f"a failed check: {reason}", reach)
        return entries

    def _forfeit(self, state: AccountState, reason: str, clawed: dict[int, int]) -> list[LedgerEntry]:
        """The escrow, and `clawed`: the credit vested since the account's last passed recomputation."""
        if not state.undecided and not clawed:
            return []
        grants = sorted(state.undecided)
        flops = sum(state.undecided.values())
        state.undecided.clear()
        state.accepted_after.clear()
        state.pending.clear()
        state.unproven.clear()
        state.vested_unproven.clear()
        return [self._entry(forfeit=Forfeit(account_id=state.account_id, grant_indices=grants, flops=flops,
                                            reason=reason, clawed_back_indices=sorted(clawed),
                                            clawed_back_flops=sum(clawed.values())))]

    def _claw_back_cut(self, state: AccountState) -> int:
        """Vested grants after this index are within a strike's reach: after the last passed recomputation, or
        before the earliest check still pending (it was admitted on a collateral that counted them)."""
        cut = state.last_proof
        if state.pending:
            cut = min(cut, min(state.pending) - 1)
        return cut

    def _clawable(self, state: AccountState) -> dict[int, int]:
        cut = self._claw_back_cut(state)
        return {g: f for g, f in state.vested_unproven.items() if g > cut}

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
        flops = 0
        for g in due:
            state.vested_unproven[g] = state.undecided.pop(g)
            flops += state.vested_unproven[g]
            del state.accepted_after[g]
        return [self._entry(vest=Vest(account_id=state.account_id, grant_indices=due, flops=flops))]

    def _entry(self, **kind) -> LedgerEntry:
        return LedgerEntry(origin=self.origin, **kind)
