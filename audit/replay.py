"""Replaying the log: every check an auditor can make on the entries themselves, and the balances they add up to.

Per entry (independent of the others, so it runs on worker threads): the bytes decode canonically,
the origin is this log's, a grant carries a report that is a valid SignedEnvelope signed by the
account it credits, for this origin, claiming at least the samples granted; a binding carries both
signatures (account and hivemind key) and names the same account and peer as its record. In index
order (on the caller's thread): report sequence numbers rise strictly per account, no report or
binding is logged twice, no peer is bound to two accounts, and the credit arithmetic, vesting and
forfeits hold (`Balances`, the tracker's own fold); given the lead's signed manifest, the tracker's
decisions follow its policy (`PolicyReplay`).

The Ed25519 check of each report dominates the cost; PyNaCl releases the GIL while it runs, so a
few threads use every core without the pickling and start-up of a process pool.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from google.protobuf.message import DecodeError

from potluck.entries import Balances, decode_entry, dedup_key
from potluck.errors import VerificationError
from potluck.proto.ledger_pb2 import BindingRecord, CreditGrant, LedgerEntry
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import PURPOSE_REPORT, open_envelope

from .policy import PolicyReplay
from .problems import Problem
from .problems import short_account as _short

__all__ = ["CHUNK_SIZE", "Replay", "check_entries", "default_num_threads"]

#: Entries handed to a worker thread at a time.
CHUNK_SIZE = 256
_MAX_THREADS = 8

# Per entry, what the independent checks found: the decoded entry (None if it does not decode),
# the report sequence of a grant whose report verified (else None), the dedup key, problems.
_Checked = tuple[LedgerEntry | None, int | None, bytes | None, list[str]]


def default_num_threads() -> int:
    """One worker thread per core this process may run on."""
    return max(1, min(_MAX_THREADS, len(os.sched_getaffinity(0))))


def _check_grant(origin: str, index: int, grant: CreditGrant, problems: list[str]) -> int | None:
    try:
        opened = open_envelope(grant.report, purpose=PURPOSE_REPORT, origin=origin)
    except VerificationError as exc:
        problems.append(f"entry {index}: the granted report does not verify: {exc}")
        return None
    signer = opened.signer.hex()
    if signer != grant.account_id:
        problems.append(f"entry {index}: expected the report to be signed by the credited account "
                        f"{_short(grant.account_id)}, got a signature by {_short(signer)}")
        return None
    try:
        report = ContributionReport.FromString(opened.payload)
    except DecodeError:
        problems.append(f"entry {index}: the signed report is not a ContributionReport")
        return None
    if report.account_id != grant.account_id:
        problems.append(f"entry {index}: expected the report to name the credited account "
                        f"{_short(grant.account_id)}, got {_short(report.account_id)}")
    if report.origin != origin:
        problems.append(f"entry {index}: expected the report's origin {origin!r}, got {report.origin!r}")
    if grant.num_samples > report.num_samples:
        problems.append(f"entry {index}: grants credit for {grant.num_samples} samples, but the signed report "
                        f"claims only {report.num_samples}")
    return report.sequence


def _check_binding(origin: str, index: int, record: BindingRecord, problems: list[str]) -> None:
    # Imported here: it needs hivemind's protobufs, which take seconds to import and most chunks never need.
    from potluck.binding import verify_binding

    try:
        binding = verify_binding(record.binding, origin)
    except VerificationError as exc:
        problems.append(f"entry {index}: the logged binding does not verify: {exc}")
        return
    if (binding.account_id, binding.peer_id) != (record.account_id, record.peer_id):
        problems.append(f"entry {index}: expected the record to name the binding's account "
                        f"{_short(binding.account_id)} and peer {binding.peer_id}, got {_short(record.account_id)} "
                        f"and {record.peer_id}")


def check_entries(origin: str, start: int, entries: Sequence[bytes]) -> list[_Checked]:
    """The checks each entry passes or fails on its own, for entries start, start+1, …"""
    results: list[_Checked] = []
    for index, data in enumerate(entries, start):
        problems: list[str] = []
        try:
            entry = decode_entry(data, index)
        except VerificationError as exc:
            results.append((None, None, None, [str(exc)]))
            continue
        if entry.origin != origin:
            problems.append(f"entry {index}: expected origin {origin!r}, got {entry.origin!r}")
        kind = entry.WhichOneof("kind")
        sequence = None
        if kind == "grant":
            sequence = _check_grant(origin, index, entry.grant, problems)
        elif kind == "binding":
            _check_binding(origin, index, entry.binding, problems)
        results.append((entry, sequence, dedup_key(entry), problems))
    return results


class Replay:
    """Feeds entries in index order through every check; collects problems and recomputes balances.

    `feed` returns before the slow checks finish (they run on `num_threads` threads); call `finish`
    before reading `problems` or `balances`.
    """

    def __init__(self, origin: str, *, num_threads: int | None = None, policy: PolicyReplay | None = None):
        self.origin, self.policy = origin, policy
        self.balances = Balances()
        self.problems: list[Problem] = []
        self.num_threads = default_num_threads() if num_threads is None else num_threads
        self._fed = 0
        self._last_sequence: dict[str, tuple[int, int]] = {}  # account -> (sequence, index)
        self._first_logged: dict[bytes, int] = {}  # dedup key -> index
        self._peer_owner: dict[str, tuple[str, int]] = {}  # PeerID -> (account, index of its binding)
        self._pool = ThreadPoolExecutor(self.num_threads, "replay") if self.num_threads > 1 else None
        self._pending: deque[tuple[int, Future]] = deque()

    @property
    def num_fed(self) -> int:
        return self._fed

    def feed(self, entries: Sequence[bytes]) -> None:
        """Queue the next entries, in index order."""
        for offset in range(0, len(entries), CHUNK_SIZE):
            chunk = entries[offset:offset + CHUNK_SIZE]
            start, self._fed = self._fed, self._fed + len(chunk)
            if self._pool is None:
                self._apply(start, check_entries(self.origin, start, chunk))
                continue
            self._pending.append((start, self._pool.submit(check_entries, self.origin, start, chunk)))
            # A bounded window keeps the workers busy without holding the whole log in memory.
            while len(self._pending) > 2 * self.num_threads:
                self._apply_oldest()

    def finish(self) -> None:
        """Wait for every fed entry to be checked and stop the worker threads."""
        try:
            while self._pending:
                self._apply_oldest()
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _apply_oldest(self) -> None:
        start, future = self._pending.popleft()
        self._apply(start, future.result())

    def _problem(self, message: str) -> None:
        self.problems.append(Problem("entry", message))

    def _apply(self, start: int, checked: list[_Checked]) -> None:
        for index, (entry, sequence, key, problems) in enumerate(checked, start):
            for message in problems:
                self._problem(message)
            if entry is None:
                self.balances.size = index + 1  # keep later indices aligned past an undecodable entry
                continue
            duplicate = False
            if key is not None:
                first = self._first_logged.setdefault(key, index)
                if first != index:
                    duplicate = True
                    what = "report" if entry.WhichOneof("kind") == "grant" else "binding"
                    self._problem(f"entry {index}: logs the same signed {what} as entry {first}")
            if sequence is not None and not duplicate:
                self._check_sequence(index, entry.grant.account_id, sequence)
            elif entry.WhichOneof("kind") == "binding":
                self._check_peer_owner(index, entry.binding)
            try:
                self.balances.apply(index, entry)
            except VerificationError as exc:
                self._problem(str(exc))
                self.balances.size = index + 1
            if self.policy is not None:
                for message in self.policy.apply(index, entry):
                    self.problems.append(Problem("policy", message))

    def _check_peer_owner(self, index: int, record: BindingRecord) -> None:
        owner = self._peer_owner.setdefault(record.peer_id, (record.account_id, index))
        if owner[0] != record.account_id:
            self._problem(f"entry {index}: binds peer {record.peer_id} to account {_short(record.account_id)}, but "
                          f"entry {owner[1]} bound it to {_short(owner[0])}")

    def _check_sequence(self, index: int, account_id: str, sequence: int) -> None:
        last = self._last_sequence.get(account_id)
        if last is not None and sequence <= last[0]:
            self._problem(f"entry {index}: expected a report sequence above {last[0]} (account "
                          f"{_short(account_id)}'s at entry {last[1]}), got {sequence}")
            return
        self._last_sequence[account_id] = (sequence, index)
