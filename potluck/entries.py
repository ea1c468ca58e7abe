"""Ledger entries and the credit arithmetic, shared by the tracker that writes them and the auditor
that replays them: balances are a pure function of the entries.

An entry's bytes are a deterministically serialized `LedgerEntry`; those exact bytes are stored,
served and hashed into the Merkle tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from google.protobuf.message import DecodeError

from potluck.errors import VerificationError
from potluck.proto.ledger_pb2 import (
    Ban,
    BindingRecord,
    CreditGrant,
    DataCredit,
    Forfeit,
    LedgerEntry,
    Strike,
    Vest,
)
from potluck.proto.wire import MAX_ENTRY_BYTES

CREDIT_DECIMALS = 12  # 1e-12 credit = 1 kFLOP at the default unit; exact enough for any task
PPM = 1_000_000  # a data share is carried in parts per million, so its arithmetic is exact integers


def flops_for(num_samples: int, flops_per_sample: int) -> int:
    """FLOPs of training compute that `num_samples` samples represent."""
    return num_samples * flops_per_sample


def data_flops(grant_flops: int, share_ppm: int, windows: int, total_windows: int) -> int:
    """What an owner of `windows` of the swarm's `total_windows` training windows earns for a grant of
    `grant_flops` (potluck/data_credit.py), in FLOPs."""
    return grant_flops * share_ppm * windows // (PPM * total_windows)


def credits_text(flops: int, flops_per_credit: int) -> str:
    """`flops / flops_per_credit` as exact decimal text, rounded down to CREDIT_DECIMALS places."""
    scaled = flops * 10**CREDIT_DECIMALS // flops_per_credit
    text = format(Decimal(scaled).scaleb(-CREDIT_DECIMALS), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def credits_value(flops: int, flops_per_credit: int) -> Decimal:
    return Decimal(credits_text(flops, flops_per_credit))


def serialize_entry(entry: LedgerEntry) -> bytes:
    return entry.SerializeToString(deterministic=True)


def decode_entry(data: bytes, index: int | None = None) -> LedgerEntry:
    """Parse entry bytes, insisting on the canonical encoding the tracker writes."""
    where = f"entry {index}: " if index is not None else ""
    try:
        entry = LedgerEntry.FromString(data)
    except DecodeError:
        raise VerificationError(f"{where}expected a serialized LedgerEntry, got undecodable bytes") from None
    if serialize_entry(entry) != data:
        raise VerificationError(f"{where}expected canonically serialized entry bytes, got another encoding")
    if entry.WhichOneof("kind") is None:
        raise VerificationError(f"{where}expected an entry kind (grant, vest, …), got none")
    return entry


def report_dedup_key(report: bytes) -> bytes:
    return hashlib.sha256(b"report\n" + report).digest()


def dedup_key(entry: LedgerEntry) -> bytes | None:
    """What makes an append idempotent: the same signed bytes are only ever logged once."""
    kind = entry.WhichOneof("kind")
    if kind == "grant":
        return report_dedup_key(entry.grant.report)
    if kind == "binding":
        return hashlib.sha256(b"binding\n" + entry.binding.binding).digest()
    return None


def grant_entry(
    *, origin: str, report: bytes, account_id: str, num_samples: int, flops_per_sample: int,
    policy_version: int, flops_per_credit: int, logged_at_ms: int, data_share_ppm: int = 0,
    data: Sequence[DataCredit] = (), data_windows: int = 0,
) -> LedgerEntry:
    flops = flops_for(num_samples, flops_per_sample)
    return LedgerEntry(origin=origin, logged_at_ms=logged_at_ms, grant=CreditGrant(
        report=report, account_id=account_id, num_samples=num_samples, flops_per_sample=flops_per_sample,
        policy_version=policy_version, flops_per_credit=flops_per_credit, flops=flops,
        credits=credits_text(flops, flops_per_credit), data_share_ppm=data_share_ppm, data=data,
        data_windows=data_windows))


def check_grant_arithmetic(grant: CreditGrant, index: int) -> None:
    """Raise unless the grant's FLOPs and credits follow from its samples and the policy."""
    expected = flops_for(grant.num_samples, grant.flops_per_sample)
    if grant.flops != expected:
        raise VerificationError(f"entry {index}: expected flops {grant.num_samples} x {grant.flops_per_sample} = "
                                f"{expected}, got {grant.flops}")
    if grant.flops_per_credit == 0:
        raise VerificationError(f"entry {index}: expected a positive flops_per_credit, got 0")
    expected_credits = credits_text(grant.flops, grant.flops_per_credit)
    if grant.credits != expected_credits:
        raise VerificationError(f"entry {index}: expected credits {expected_credits}, got {grant.credits}")
    _check_data_arithmetic(grant, index)


def _check_data_arithmetic(grant: CreditGrant, index: int) -> None:
    """Raise unless each owner's data credit follows from the grant's FLOPs, the share and its windows, each
    owner once. That the windows are the manifest's is the auditor's policy replay's (audit/policy.py)."""
    if grant.data_share_ppm > PPM:
        raise VerificationError(f"entry {index}: expected a data share of at most {PPM} ppm, "
                                f"got {grant.data_share_ppm}")
    if not grant.data:
        return
    if not grant.data_share_ppm:
        raise VerificationError(f"entry {index}: credits data owners at a data share of 0")
    owners = [credit.owner for credit in grant.data]
    if owners != sorted(set(owners)) or "" in owners:
        raise VerificationError(f"entry {index}: expected data credits to distinct, named owners, in owner order")
    if (windows := sum(credit.windows for credit in grant.data)) > grant.data_windows:
        raise VerificationError(f"entry {index}: data credits for {windows} windows, of {grant.data_windows} in all")
    for credit in grant.data:
        flops = data_flops(grant.flops, grant.data_share_ppm, credit.windows, grant.data_windows)
        if credit.flops != flops:
            raise VerificationError(f"entry {index}: expected data flops {flops} for {credit.owner[:12]}, "
                                    f"got {credit.flops}")
        if credit.credits != (expected := credits_text(flops, grant.flops_per_credit)):
            raise VerificationError(f"entry {index}: expected data credits {expected} for {credit.owner[:12]}, "
                                    f"got {credit.credits}")


# Failed checks (strikes not forgiven) that confirm cheating and forfeit an account's escrow and the credit
# it vested since its last passed recomputation; a strike after a forfeit not forgiven bans it. The
# tracker's policy decides by it (tracker/credit/deterrence.py says why one); the auditor's replay checks it.
STRIKES_TO_FORFEIT = 1


@dataclass
class AccountBalance:
    """Where an account's credit stands, in FLOPs (display credits with `credits_value`)."""

    account_id: str
    granted_flops: int = 0
    escrow_flops: int = 0
    vested_flops: int = 0
    forfeited_flops: int = 0
    strikes: int = 0
    banned: bool = False
    # Credit for text it owns (potluck/data_credit.py): it follows the grants that paid it.
    data_granted_flops: int = 0
    data_escrow_flops: int = 0
    data_vested_flops: int = 0
    data_forfeited_flops: int = 0
    escrow: dict[int, int] = field(default_factory=dict)  # grant index -> flops still in escrow
    vested: dict[int, int] = field(default_factory=dict)  # grant index -> flops vested and not clawed back


class Balances:
    """Folds ledger entries, in index order, into per-account balances.

    The tracker and the auditor both use this; an entry that moves credit it may not move
    (vesting a grant that is not in escrow, say) raises `VerificationError` naming its index.
    """

    def __init__(self) -> None:
        self.accounts: dict[str, AccountBalance] = {}
        self.size = 0
        # grant index -> (owner, flops) of its data credits, while they are in escrow or vested
        self.data_of_grant: dict[int, list[tuple[str, int]]] = {}

    def account(self, account_id: str) -> AccountBalance:
        """The balance of `account_id`, created (and from then on listed) on first mention."""
        if account_id not in self.accounts:
            self.accounts[account_id] = AccountBalance(account_id)
        return self.accounts[account_id]

    def restore(self, index: int, entry: LedgerEntry) -> None:
        """Fold in an entry logged before this process began; a pure fold does just what `apply` does."""
        self.apply(index, entry)

    def apply(self, index: int, entry: LedgerEntry) -> None:
        if index != self.size:
            raise VerificationError(f"entry {index}: expected index {self.size} next")
        kind = entry.WhichOneof("kind")
        body = getattr(entry, kind)
        if kind == "grant":
            check_grant_arithmetic(body, index)
            account = self.account(body.account_id)
            account.granted_flops += body.flops
            account.escrow_flops += body.flops
            account.escrow[index] = body.flops
            for credit in body.data:
                owner = self.account(credit.owner)
                owner.data_granted_flops += credit.flops
                owner.data_escrow_flops += credit.flops
            if body.data:
                self.data_of_grant[index] = [(credit.owner, credit.flops) for credit in body.data]
        elif kind in ("vest", "forfeit"):
            self._release(index, kind, body)
        elif kind == "strike":
            self.account(body.account_id).strikes += 1
        elif kind == "ban":
            self.account(body.account_id).banned = True
        self.size += 1

    def check(self, start: int, entries: Sequence[LedgerEntry]) -> None:
        """Raise as `apply` would for `entries` (indices start..) folded in turn, changing nothing.

        The ledger calls it before it stores them: an entry refused after its commit would stay in the
        store, and every later start would refuse to fold it. Only grants and releases can be refused; a
        release may name a grant earlier in the same batch, so the batch's own grants and releases are
        followed in `pending` escrow and vested views.
        """
        if start != self.size:
            raise VerificationError(f"entry {start}: expected index {self.size} next")
        escrow: dict[str, _Pending] = {}
        vested: dict[str, _Pending] = {}

        def pending(views: dict[str, _Pending], account_id: str, held: str) -> _Pending:
            if account_id not in views:
                account = self.accounts.get(account_id)
                views[account_id] = _Pending(getattr(account, held) if account is not None else {})
            return views[account_id]

        for index, entry in enumerate(entries, start):
            kind = entry.WhichOneof("kind")
            body = getattr(entry, kind)
            if kind == "grant":
                check_grant_arithmetic(body, index)
                pending(escrow, body.account_id, "escrow").added[index] = body.flops
            elif kind in ("vest", "forfeit"):
                account_escrow = pending(escrow, body.account_id, "escrow")
                account_vested = pending(vested, body.account_id, "vested")
                grants, _, clawed, _ = _released(index, kind, body, account_escrow, account_vested)
                for grant_index in grants:
                    flops = account_escrow.take(grant_index)
                    if kind == "vest":
                        account_vested.added[grant_index] = flops
                for grant_index in clawed:
                    account_vested.take(grant_index)

    def _release(self, index: int, kind: str, body: Vest | Forfeit) -> None:
        account = self.account(body.account_id)
        grants, total, clawed, clawed_flops = _released(index, kind, body, account.escrow, account.vested)
        for grant_index in grants:
            flops = account.escrow.pop(grant_index)
            if kind == "vest":
                account.vested[grant_index] = flops
            self._release_data(grant_index, vest=kind == "vest", vested=False)
        for grant_index in clawed:
            del account.vested[grant_index]
            self._release_data(grant_index, vest=False, vested=True)
        account.escrow_flops -= total
        if kind == "vest":
            account.vested_flops += total
        else:
            account.vested_flops -= clawed_flops
            account.forfeited_flops += total + clawed_flops


    def _release_data(self, grant_index: int, *, vest: bool, vested: bool) -> None:
        """The grant's data credits follow it: out of escrow into vested, or (from either) forfeited."""
        credits = self.data_of_grant.get(grant_index, []) if vest else self.data_of_grant.pop(grant_index, [])
        for owner_id, flops in credits:
            owner = self.accounts[owner_id]
            if vested:
                owner.data_vested_flops -= flops
            else:
                owner.data_escrow_flops -= flops
            if vest:
                owner.data_vested_flops += flops
            else:
                owner.data_forfeited_flops += flops


class _Pending:
    """A grant-index -> FLOPs table as it stands partway through a batch under `Balances.check`: the held
    table, less what the batch took, plus what it added; the held table itself is left alone."""

    def __init__(self, held: dict[int, int]):
        self.held, self.added, self.taken = held, {}, set()

    def __contains__(self, grant_index: int) -> bool:
        return grant_index in self.added or (grant_index in self.held and grant_index not in self.taken)

    def __getitem__(self, grant_index: int) -> int:
        return self.added[grant_index] if grant_index in self.added else self.held[grant_index]

    def take(self, grant_index: int) -> int:
        flops = self[grant_index]
        if self.added.pop(grant_index, None) is None:
            self.taken.add(grant_index)
        return flops


def _released(index: int, kind: str, body: Vest | Forfeit, escrow, vested) -> tuple[list[int], int, list[int], int]:
    """What a vest or forfeit releases, checked against the account's `escrow` and `vested` tables:
    (grants out of escrow, their FLOPs, grants clawed back, their FLOPs)."""
    grants = list(body.grant_indices)
    total = _taken(index, f"{kind} names", grants, escrow, f"in {body.account_id[:12]}'s escrow", kind, body.flops)
    clawed = list(body.clawed_back_indices) if kind == "forfeit" else []
    clawed_flops = _taken(index, "forfeit claws back", clawed, vested,
                          f"vested by {body.account_id[:12]} (or was clawed back already)", "claw-back",
                          body.clawed_back_flops if kind == "forfeit" else 0)
    return grants, total, clawed, clawed_flops


def _taken(index: int, what: str, grants: list[int], held, where: str, kind: str,
           claimed: int) -> int:
    """The FLOPs of `grants`, each once and each in `held`, which must add up to `claimed`."""
    for grant_index in grants:
        if grant_index not in held:
            raise VerificationError(f"entry {index}: {what} grant {grant_index}, which is not {where}")
    if len(set(grants)) != len(grants):
        raise VerificationError(f"entry {index}: {what} a grant twice")
    total = sum(held[grant_index] for grant_index in grants)
    if total != claimed:
        raise VerificationError(f"entry {index}: expected {kind} of {total} flops, got {claimed}")
    return total


__all__ = [
    "MAX_ENTRY_BYTES", "AccountBalance", "Balances", "Ban", "BindingRecord", "CreditGrant", "DataCredit", "Forfeit",
    "LedgerEntry",
    "STRIKES_TO_FORFEIT", "Strike", "Vest", "check_grant_arithmetic", "credits_text", "credits_value",
    "PPM", "data_flops", "decode_entry", "dedup_key", "flops_for", "grant_entry", "serialize_entry",
]
