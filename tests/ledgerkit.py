"""Builders for real ledger contents in tests: signed contribution reports and the entries granting them."""

from __future__ import annotations

import os
import time

from potluck.entries import grant_entry
from potluck.identity import AccountKey
from potluck.proto.ledger_pb2 import LedgerEntry, Vest
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import PURPOSE_REPORT, seal

ORIGIN = "potluck.swarm/test/ledger"
FLOPS_PER_SAMPLE = 123_456
FLOPS_PER_CREDIT = 10**15


def signed_report(account: AccountKey, sequence: int, *, num_samples: int = 64, origin: str = ORIGIN,
                  epoch: int | None = None) -> bytes:
    report = ContributionReport(
        origin=origin, manifest_id=b"\x11" * 32, account_id=account.account_id, peer_id="QmPeer",
        sequence=sequence, epoch=sequence if epoch is None else epoch, batch_size=32,
        losses=[1.0] * (num_samples // 32), num_samples=num_samples, num_tokens=num_samples,
        state_digest=os.urandom(32), wall_time=1.5, device_class="cpu", started_at=time.time())
    return seal(report.SerializeToString(deterministic=True), purpose=PURPOSE_REPORT, origin=origin,
                signing_key=account.signing_key)


def grant(account: AccountKey, sequence: int, *, num_samples: int = 64, origin: str = ORIGIN,
          report: bytes | None = None) -> LedgerEntry:
    return grant_entry(
        origin=origin, report=report or signed_report(account, sequence, num_samples=num_samples, origin=origin),
        account_id=account.account_id, num_samples=num_samples, flops_per_sample=FLOPS_PER_SAMPLE,
        policy_version=1, flops_per_credit=FLOPS_PER_CREDIT, logged_at_ms=int(time.time() * 1000))


def vest(account: AccountKey, grant_indices: list[int], flops: int, origin: str = ORIGIN) -> LedgerEntry:
    return LedgerEntry(origin=origin, logged_at_ms=int(time.time() * 1000),
                       vest=Vest(account_id=account.account_id, grant_indices=grant_indices, flops=flops))
