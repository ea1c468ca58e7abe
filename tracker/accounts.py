"""What the tracker knows about each account, folded from the ledger so that it survives restarts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.report_pb2 import ContributionReport
from potluck.proto.signing import PURPOSE_REPORT, open_envelope


@dataclass
class Account:
    account_id: str
    peer_ids: set[str] = field(default_factory=set)
    last_sequence: int = 0  # the highest logged, or admitted and being logged (see `reserve`)
    logged_sequence: int = 0  # the highest logged
    reserved: set[int] = field(default_factory=set)  # sequences admitted, their grants not yet logged
    num_grants: int = 0
    strikes: int = 0
    banned: bool = False
    samples_by_epoch: dict[int, int] = field(default_factory=lambda: defaultdict(int))


class Accounts:
    """Bindings, sequence numbers, per-epoch claims, strikes and bans, by account."""

    def __init__(self, origin: str):
        self.origin = origin
        self.by_account: dict[str, Account] = {}
        self.account_of_peer: dict[str, str] = {}

    def get(self, account_id: str) -> Account:
        if account_id not in self.by_account:
            self.by_account[account_id] = Account(account_id)
        return self.by_account[account_id]

    def bind(self, account_id: str, peer_id: str) -> None:
        self.get(account_id).peer_ids.add(peer_id)
        self.account_of_peer[peer_id] = account_id

    def reserve(self, report: ContributionReport) -> None:
        """An admitted report holds its sequence and its epoch's samples while its grant is being logged."""
        account = self.get(report.account_id)
        account.last_sequence = max(account.last_sequence, report.sequence)
        account.reserved.add(report.sequence)
        account.samples_by_epoch[report.epoch] += report.num_samples

    def confirm(self, report: ContributionReport) -> None:
        """Its grant is logged."""
        account = self.get(report.account_id)
        account.reserved.discard(report.sequence)
        account.logged_sequence = max(account.logged_sequence, report.sequence)

    def release(self, report: ContributionReport) -> None:
        """Its grant could not be logged: its sequence and samples are free again, for the node's resend.

        Unless a later sequence of the account is logged meanwhile: this one then stays behind it (its
        resend is a replay). A reporter sends one message at a time, and a message is one commit.
        """
        account = self.get(report.account_id)
        account.reserved.discard(report.sequence)
        account.samples_by_epoch[report.epoch] -= report.num_samples
        if account.last_sequence == report.sequence:
            account.last_sequence = max(account.logged_sequence, *account.reserved, 0)

    def apply(self, entry: LedgerEntry) -> None:
        """Fold one logged entry in (entries come from our own ledger, so they are trusted)."""
        kind = entry.WhichOneof("kind")
        if kind == "binding":
            self.bind(entry.binding.account_id, entry.binding.peer_id)
        elif kind == "grant":
            report = ContributionReport.FromString(
                open_envelope(entry.grant.report, purpose=PURPOSE_REPORT, origin=self.origin).payload)
            self.reserve(report)
            self.confirm(report)
            self.get(entry.grant.account_id).num_grants += 1
        elif kind == "strike":
            self.get(entry.strike.account_id).strikes += 1
        elif kind == "ban":
            self.get(entry.ban.account_id).banned = True
