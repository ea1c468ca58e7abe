"""A tracker that can lie, for auditor tests: a real gRPC server over real SQLite ledgers signed with one log key.

The liar holds the log key (it is the tracker), so it can serve another history and re-sign checkpoints
for it, or alter entries on the wire. Only the auditor's memory (`--state`) and other auditors'
checkpoints (`--compare`) stand between it and a clean audit.
"""

from __future__ import annotations

from pathlib import Path

from grpckit import ServerThread
from ledgerkit import FLOPS_PER_CREDIT, ORIGIN, grant, vest
from nacl.signing import SigningKey
from typer.testing import CliRunner

from potluck.cli import app
from potluck.entries import decode_entry, dedup_key, grant_entry, serialize_entry
from potluck.identity import AccountKey
from potluck.proto import tracker_pb2 as pb
from potluck.tlog.merkle import leaf_hash
from potluck.tlog.note import verifier_key_text
from potluck.tracker.ledger.ledger import Ledger
from potluck.tracker.ledger.store import StoredEntry, open_store
from potluck.tracker.service.ledger_service import LedgerService

LOG_KEY = SigningKey(b"\x17" * 32)
VERIFIER_KEY = verifier_key_text(ORIGIN, LOG_KEY.verify_key)
ACCOUNTS = [AccountKey(SigningKey(bytes([i + 1]) * 32)) for i in range(3)]
VEST_INDEX = 6


def build_log(n: int, *, first_sequence: int = 1) -> list[bytes]:
    """Entry bytes of an honest log: grants round-robin over three accounts, and one vest at index 6."""
    entries, sequences = [], [first_sequence - 1] * 3
    for i in range(n):
        if i == VEST_INDEX:
            entries.append(vest(ACCOUNTS[0], [0, 3], entries[0].grant.flops * 2))
            continue
        a = i % 3
        sequences[a] += 1
        entries.append(grant(ACCOUNTS[a], sequences[a]))
    return [serialize_entry(e) for e in entries]


def inflated(data: bytes, factor: int = 100) -> bytes:
    """The same signed report, granted `factor` times the samples, with FLOPs and credits to match."""
    g = decode_entry(data).grant
    return serialize_entry(grant_entry(
        origin=ORIGIN, report=g.report, account_id=g.account_id, num_samples=g.num_samples * factor,
        flops_per_sample=g.flops_per_sample, policy_version=g.policy_version, flops_per_credit=g.flops_per_credit,
        logged_at_ms=decode_entry(data).logged_at_ms))


def stolen(data: bytes, thief: AccountKey) -> bytes:
    """Another account's signed report, granted to `thief`."""
    g = decode_entry(data).grant
    return serialize_entry(grant_entry(
        origin=ORIGIN, report=g.report, account_id=thief.account_id, num_samples=g.num_samples,
        flops_per_sample=g.flops_per_sample, policy_version=g.policy_version, flops_per_credit=g.flops_per_credit,
        logged_at_ms=1))


class LyingLedgerService(LedgerService):
    """The real read API, plus ways to lie on the wire: altered or dropped entries, altered balances."""

    def __init__(self, ledger: Ledger):
        super().__init__(ledger, FLOPS_PER_CREDIT)
        self.altered: dict[int, bytes] = {}
        self.dropped: set[int] = set()
        self.extra_vested_flops = 0
        self.endless = False  # after the entries asked for, more without end (copies of the last one)
        self.calls = self.batches_past_end = 0  # GetEntries calls taken, batches sent past what was asked

    async def GetEntries(self, request, context):
        self.calls += 1
        last = None
        async for batch in super().GetEntries(request, context):
            indices = range(batch.start, batch.start + len(batch.entries))
            entries = [self.altered.get(i, data) for i, data in zip(indices, batch.entries, strict=True)
                       if i not in self.dropped]
            last = entries[-1] if entries else last
            yield pb.EntriesBatch(start=batch.start, entries=entries)
        start = request.end
        while self.endless and last is not None:
            self.batches_past_end += 1
            yield pb.EntriesBatch(start=start, entries=[last] * 100)
            start += 100

    async def GetBalances(self, request, context):
        answer = await super().GetBalances(request, context)
        if self.extra_vested_flops and answer.balances:
            answer.balances[0].vested_flops += self.extra_vested_flops
        return answer


class Tracker:
    """A real gRPC server whose service can be pointed at any ledger (each re-signed with LOG_KEY)."""

    def __init__(self, directory: Path, tracker_service=None):
        """`tracker_service(verifier_key)`, if given, makes the Tracker service to serve beside the ledger."""
        self.directory = directory
        self.verifier_key = VERIFIER_KEY
        self.ledgers: list[Ledger] = []
        self.service = LyingLedgerService(self.open_ledger([], "empty"))
        self.server: ServerThread | None = ServerThread(
            ledger_service=self.service,
            tracker_service=tracker_service(VERIFIER_KEY) if tracker_service is not None else None)
        self.address = self.server.address
        self.runner = CliRunner()

    def open_ledger(self, entries: list[bytes], name: str) -> Ledger:
        """A ledger holding exactly these entry bytes (whatever they are), signed with the log key."""
        store = open_store(self.directory / f"{name}.sqlite")
        seen: set[bytes] = set()
        rows = []
        for index, data in enumerate(entries):
            key = dedup_key(decode_entry(data))
            if key in seen:
                key = None  # a liar's duplicate: the store's uniqueness would refuse it
            seen.add(key)
            rows.append(StoredEntry(index, data, leaf_hash(data), key))
        if rows:
            store.insert(rows)
        ledger = Ledger(store, origin=ORIGIN, log_key=LOG_KEY)
        self.ledgers.append(ledger)
        return ledger

    def serve(self, entries: list[bytes], name: str) -> Ledger:
        ledger = self.open_ledger(entries, name)
        self.service.ledger = ledger
        return ledger

    def cli(self, *args: str):
        return self.runner.invoke(app, list(args))

    def verify(self, state: Path | None, *extra: str, log_key: str | None = None):
        args = ["audit", "verify", "--tracker", self.address, "--log-key", log_key or self.verifier_key,
                "--timeout", "20"]
        if state is not None:
            args += ["--state-dir", str(state)]
        return self.cli(*args, *extra)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def close(self) -> None:
        self.stop_server()
        for ledger in self.ledgers:
            ledger.store.close()
