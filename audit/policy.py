"""Checking the tracker's decisions against the lead's signed manifest, not only its arithmetic.

Threat: the tracker's operator runs the tracker, but the auditor trusts only the log key and the
signed manifest. A tracker that grants a friend a higher price per sample, vests before the escrow
depth, or strikes an account without a report to show for it would pass an arithmetic replay.
These checks replay what the credit policy (tracker/credit/credit_policy.py) may decide:

* every grant uses the manifest's policy version, FLOPs per credit and FLOPs per sample;
* every grant credits the owners of the training text as the manifest's data share and their shares
  of its training windows say (potluck/data_credit.py), no more, no less;
* a grant vests only once its account has `escrow_depth` later grants logged, and never after a
  strike on it;
* a strike names a grant logged before it (the report that is the evidence) and the check that
  failed; a recomputation or progress strike names a report of the struck account itself;
* a forfeit or a ban comes in the same decision as a strike on the same account (the entry just
  before it for that account), after enough strikes: a forfeit needs 1, a ban 2. What a forfeit
  claws back must be credit the account had vested (the arithmetic replay, potluck/entries.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from potluck.data_credit import DataSplit
from potluck.entries import STRIKES_TO_FORFEIT
from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.manifest_pb2 import Manifest

from .problems import short_account as _short

OWN_REPORT_CHECKS = ("recompute", "progress")


@dataclass
class _Account:
    grants: list[int] = field(default_factory=list)  # its grant indices, in order
    strikes: int = 0
    struck: set[int] = field(default_factory=set)
    last_kind: str | None = None  # the kind of its latest penalty-or-vest entry


class PolicyReplay:
    """Feed every entry in index order (`apply`); each returns the problems it shows."""

    def __init__(self, manifest: Manifest):
        self.policy, self.flops_per_sample = manifest.credit_policy, manifest.task.flops_per_sample
        self.data_split = DataSplit(manifest)
        self.accounts: dict[str, _Account] = {}
        self.grant_owner: dict[int, str] = {}  # grant index -> account

    def apply(self, index: int, entry: LedgerEntry) -> list[str]:
        kind = entry.WhichOneof("kind")
        check = getattr(self, f"_{kind}", None)
        problems = check(index, getattr(entry, kind)) if check else []
        if kind in ("vest", "strike", "forfeit", "ban"):
            self._account(getattr(entry, kind).account_id).last_kind = kind
        return [f"entry {index}: {p}" for p in problems]

    def _account(self, account_id: str) -> _Account:
        return self.accounts.setdefault(account_id, _Account())

    def _grant(self, index: int, grant) -> list[str]:
        problems = []
        if grant.policy_version != self.policy.version:
            problems.append(f"expected credit policy version {self.policy.version} (the manifest's), "
                            f"got {grant.policy_version}")
        if grant.flops_per_credit != self.policy.flops_per_credit:
            problems.append(f"expected {self.policy.flops_per_credit} FLOPs per credit (the manifest's), "
                            f"got {grant.flops_per_credit}")
        if self.flops_per_sample and grant.flops_per_sample != self.flops_per_sample:
            problems.append(f"expected {self.flops_per_sample} FLOPs per sample (the manifest's), "
                            f"got {grant.flops_per_sample}")
        problems += self._data(grant)
        self._account(grant.account_id).grants.append(index)
        self.grant_owner[index] = grant.account_id
        return problems

    def _data(self, grant) -> list[str]:
        """The owners' data credits, recomputed from the grant's FLOPs and the manifest's shards and share."""
        if not self.data_split.total:  # no text (synthetic), or a data share of 0: no owner is owed anything
            return [] if not grant.data else ["credits data owners, but this swarm's manifest credits none"]
        if grant.data_share_ppm != self.policy.data_share_ppm or grant.data_windows != self.data_split.total:
            return [f"expected a data share of {self.policy.data_share_ppm} ppm over {self.data_split.total} windows "
                    f"(the manifest's), got {grant.data_share_ppm} over {grant.data_windows}"]
        if not grant.flops_per_credit:
            return []  # the arithmetic replay reports it
        expected = self.data_split.credits(grant.flops, grant.flops_per_credit)
        if list(grant.data) == expected:
            return []
        want = ", ".join(f"{_short(c.owner)} {c.flops}" for c in expected) or "none"
        got = ", ".join(f"{_short(c.owner)} {c.flops}" for c in grant.data) or "none"
        return [f"expected data credit in FLOPs by owner {want} (the owners' shares of the manifest's training "
                f"windows), got {got}"]

    def _vest(self, index: int, vest) -> list[str]:
        account, problems = self._account(vest.account_id), []
        depth = self.policy.escrow_depth
        for grant in vest.grant_indices:
            later = sum(1 for g in account.grants if g > grant)
            if later < depth:
                problems.append(f"vests grant {grant} of {_short(vest.account_id)} after {later} later grants, "
                                f"before the escrow depth of {depth}")
            if grant in account.struck:
                problems.append(f"vests grant {grant} of {_short(vest.account_id)}, which was struck")
        return problems

    def _strike(self, index: int, strike) -> list[str]:
        account = self._account(strike.account_id)
        account.strikes += 1
        owner = self.grant_owner.get(strike.report_index)
        if owner is None:
            return [f"strikes {_short(strike.account_id)} naming entry {strike.report_index}, which is not a grant "
                    f"logged before it"]
        if not strike.check:
            return [f"strikes {_short(strike.account_id)} without naming the check that failed"]
        if strike.check in OWN_REPORT_CHECKS and owner != strike.account_id:
            return [f"strikes {_short(strike.account_id)} for a {strike.check} check of another account's "
                    f"report (entry {strike.report_index})"]
        if owner == strike.account_id:
            account.struck.add(strike.report_index)
        return []

    def _forfeit(self, index: int, forfeit) -> list[str]:
        return self._follows_strike(forfeit.account_id, "forfeits the escrow of", STRIKES_TO_FORFEIT)

    def _ban(self, index: int, ban) -> list[str]:
        return self._follows_strike(ban.account_id, "bans", STRIKES_TO_FORFEIT + 1)

    def _follows_strike(self, account_id: str, what: str, strikes_needed: int) -> list[str]:
        account = self._account(account_id)
        if account.last_kind not in ("strike", "forfeit") or account.strikes < strikes_needed:
            return [f"{what} {_short(account_id)} without the strike that decides it ({account.strikes} strikes "
                    f"logged, {strikes_needed} needed, the last entry for it a {account.last_kind or 'none'})"]
        return []
