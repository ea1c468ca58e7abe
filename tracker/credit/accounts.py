"""Every account the tracker knows, one `AccountState` each, folded from the ledger so that it survives restarts.

`Accounts` is the ledger's fold (a `Balances`): the `Ledger` applies each committed entry to it, which
keeps the balances that `GetBalances` serves, and at start-up restores every stored entry into it,
which also rebuilds what the intake and the credit policy knew. The store is read once.
"""

from __future__ import annotations

from potluck.entries import Balances
from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.manifest_pb2 import CreditPolicy as CreditPolicyMessage
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import parse_envelope
from potluck.tracker.credit.account_state import AccountState


class Accounts(Balances):
    """Bindings, sequence numbers, per-epoch claims and the policy's state, by account; and the balances.

    `accounts` (from `Balances`) lists the accounts the log credits, as auditors see them; `states` every
    account the tracker has met, registered ones without a grant too. A committed entry (`apply`, in the
    ledger's writer thread) moves the balances only; the rest is the intake's and the policy's, on the loop.
    """

    def __init__(self, origin: str, policy: CreditPolicyMessage):
        super().__init__()
        self.origin, self.policy = origin, policy
        self.states: dict[str, AccountState] = {}
        self.account_of_peer: dict[str, str] = {}
        self.binding_index: dict[str, int] = {}  # PeerID -> ledger index of its logged binding
        # The tracker's own view of the swarm's epoch: the newest epoch of an admitted report (so a node's
        # queued reports, sent 64 to a message after an outage, pass one after another). Nothing a peer writes
        # in the DHT moves it; a report moves it at most EPOCH_SLACK (proto/wire.py) ahead.
        self.newest_epoch = 0

    def get(self, account_id: str) -> AccountState:
        """The state of `account_id`, created on first mention (new accounts start under full scrutiny)."""
        state = self.states.get(account_id)
        if state is None:  # setdefault: the ledger's writer thread may meet an account too (atomic in CPython)
            state = self.states.setdefault(account_id, AccountState(account_id,
                                                                    scrutiny_left=self.policy.new_account_checks))
        return state

    def find(self, account_id: str) -> AccountState | None:
        return self.states.get(account_id)

    def account(self, account_id: str) -> AccountState:
        """`Balances`' hook: the same state, from now on listed among the balances."""
        state = self.get(account_id)
        self.accounts[account_id] = state
        return state

    # -- the intake's reservations, on the event loop --

    def bind(self, account_id: str, peer_id: str, logged_at: float, index: int) -> None:
        self.binding_index.setdefault(peer_id, index)
        state = self.get(account_id)
        state.peer_ids.add(peer_id)
        state.bound_at[peer_id] = min(state.bound_at.get(peer_id, logged_at), logged_at)
        self.account_of_peer[peer_id] = account_id

    def last_window_end(self, account_id: str) -> float:
        """Where the account's latest window ends, logged or admitted (0 if none)."""
        state = self.get(account_id)
        return max(state.window_end, *state.reserved_windows.values(), 0.0)

    def reserve(self, report: ContributionReport) -> None:
        """An admitted report holds its sequence and its epoch's samples while its grant is being logged."""
        state = self.get(report.account_id)
        state.last_sequence = max(state.last_sequence, report.sequence)
        state.reserved.add(report.sequence)
        state.samples_by_epoch[report.epoch] += report.num_samples
        state.reserved_windows[report.sequence] = report.started_at + report.wall_time
        self.newest_epoch = max(self.newest_epoch, report.epoch)

    def confirm(self, report: ContributionReport) -> None:
        """Its grant is logged."""
        state = self.get(report.account_id)
        state.reserved.discard(report.sequence)
        state.logged_sequence = max(state.logged_sequence, report.sequence)
        state.window_end = max(state.window_end, state.reserved_windows.pop(report.sequence))

    def release(self, report: ContributionReport) -> None:
        """Its grant could not be logged: its sequence and samples are free again, for the node's resend.

        Unless a later sequence of the account is logged meanwhile: this one then stays behind it (its
        resend is a replay). A reporter sends one message at a time, and a message is one commit.
        """
        state = self.get(report.account_id)
        state.reserved.discard(report.sequence)
        state.samples_by_epoch[report.epoch] -= report.num_samples
        state.reserved_windows.pop(report.sequence, None)
        if state.last_sequence == report.sequence:
            state.last_sequence = max(state.logged_sequence, *state.reserved, 0)

    # -- the fold --

    def restore(self, index: int, entry: LedgerEntry) -> None:
        """An entry logged before this process began: the balances, and what the intake and the policy
        knew of it then. Entries come from our own ledger, so they are trusted (their signatures were
        checked when they were logged)."""
        super().apply(index, entry)
        kind = entry.WhichOneof("kind")
        body = getattr(entry, kind)
        if kind == "binding":
            self.bind(body.account_id, body.peer_id, entry.logged_at_ms / 1000, index)
        elif kind == "grant":
            report = ContributionReport.FromString(parse_envelope(body.report).payload)
            self.reserve(report)
            self.confirm(report)
            self.on_grant_logged(body.account_id, index, body.flops)
        elif kind in ("vest", "forfeit"):
            state = self.get(body.account_id)
            for grant in body.grant_indices:
                state.undecided.pop(grant, None)
                state.accepted_after.pop(grant, None)
            state.forfeited = state.forfeited or kind == "forfeit"
        elif kind == "strike":
            self.on_strike(self.get(body.account_id), body.report_index)
        elif kind == "ban":
            self.get(body.account_id).ban_decided = True

    # -- what the policy's state does when a grant is logged or a strike decided (live, or at restore) --

    def on_grant_logged(self, account_id: str, index: int, flops: int) -> AccountState:
        """Grant `index` is logged: it is undecided, and one more accepted report after the earlier ones."""
        state = self.get(account_id)
        state.num_reports += 1
        for earlier in state.undecided:
            state.accepted_after[earlier] += 1
        state.undecided[index] = flops
        state.accepted_after[index] = 0
        return state

    def on_strike(self, state: AccountState, index: int) -> None:
        """Grant `index` earned a strike: the account goes back under full scrutiny and stops vesting."""
        state.active_strikes += 1
        state.struck.add(index)
        state.frozen, state.clean_checks = True, 0
        state.scrutiny_left = max(state.scrutiny_left, self.policy.new_account_checks, 1)
