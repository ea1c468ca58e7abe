"""Everything the tracker knows about one account, in one place: what its ledger entries add up to, what
the intake has admitted, and where the credit policy stands with it.

Each field has one writer. The balance (the fields of `AccountBalance`, the fold auditors recompute)
changes only when an entry is committed, under the ledger's lock, in the writer's thread; everything
else changes on the tracker's event loop, when the intake admits a report or the policy decides. So
the balance may trail the policy by one commit: a grant the policy has decided to vest stays in
`escrow` until its vest entry is logged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from potluck.entries import AccountBalance


@dataclass
class AccountState(AccountBalance):
    # -- identity: the PeerIDs bound to the account by logged bindings, and when each was first logged --
    peer_ids: set[str] = field(default_factory=set)
    bound_at: dict[str, float] = field(default_factory=dict)  # PeerID -> seconds since the epoch, tracker's clock

    # -- intake: sequence numbers and per-epoch claims (reserved on admission, confirmed once logged) --
    last_sequence: int = 0  # the highest logged, or admitted and being logged (see `Accounts.reserve`)
    logged_sequence: int = 0  # the highest logged
    reserved: set[int] = field(default_factory=set)  # sequences admitted, their grants not yet logged
    samples_by_epoch: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # Where the account's logged windows end (the latest started_at + wall_time), and the windows of
    # admitted reports not yet logged (sequence -> end): an account's windows may not overlap.
    window_end: float = 0.0
    reserved_windows: dict[int, float] = field(default_factory=dict)

    # -- the credit policy's view --
    # grant index -> flops of each logged grant whose vest or forfeit is not decided yet
    undecided: dict[int, int] = field(default_factory=dict)
    accepted_after: dict[int, int] = field(default_factory=dict)  # grant index -> later accepted reports
    pending: set[int] = field(default_factory=set)  # grant indices whose check is not decided yet
    # Grants sent to the verifier whose verdict has not come back (drawn or not): while any is left, the
    # account's node keeps serving the states they started from (node/supervisor.py waits on it to leave).
    awaiting: set[int] = field(default_factory=set)
    # Grants drawn for recomputation whose check the verifier gave up on (it crashed on them): they never
    # vest, and hold up nothing.
    unproven: set[int] = field(default_factory=set)
    num_reports: int = 0  # grants logged
    num_passed_checks: int = 0  # recomputations that passed
    last_proof: int = -1  # the latest grant whose recomputation passed
    # Grants vested by this process and still within a strike's reach (CreditPolicy._clawable); grants
    # vested before the tracker last started are not (which recomputations passed is not logged).
    vested_unproven: dict[int, int] = field(default_factory=dict)
    scrutiny_left: int = 0  # reports still checked at rate 1 (new accounts, accounts with a strike)
    active_strikes: int = 0  # strikes not forgiven (`strikes`, from the balance, counts every one ever logged)
    struck: set[int] = field(default_factory=set)  # grant indices that earned a strike (decided or logged)
    frozen: bool = False  # after a strike, nothing vests until enough clean checks pass
    clean_checks: int = 0  # passed recomputations since the last strike
    forfeited: bool = False  # its escrow was forfeited once (decided or logged)
    # Reports carried false attestations naming one of its peers, signed by someone else: recorded
    # for the lead to see, never held against it (it signed nothing; see `Verification`). Not restored.
    named_in_false_attestations: int = 0
    ban_decided: bool = False  # the policy banned it (`banned`, from the balance, once the ban is logged)
