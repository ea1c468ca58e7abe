"""`potluck audit verify`: check a tracker's credit log end to end, trusting nothing it says.

1. The tracker's checkpoint must be signed by the pinned log key, for the key's origin.
2. It must extend the checkpoint this auditor verified last time: a smaller size is a rollback,
   the same size with another root a split view, a failed consistency proof a fork. The two signed
   notes are kept as evidence, and the entry where the histories part is named.
3. The entries new since then are downloaded; with the local copy they must hash to the checkpoint.
4. Every entry is replayed (`Replay`), and the recomputed balances must equal the tracker's. Given
   the lead's key (`--lead-key`), the signed manifest is fetched and every decision is checked
   against its policy (`PolicyReplay`): prices, vesting depth, the cause of every penalty.
5. Checkpoints other auditors saved (`--compare`) must be consistent with this one.

Only when everything holds is the new checkpoint saved, so a failed audit can be re-run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from potluck.entries import AccountBalance, credits_text
from potluck.errors import TrackerError, TrackerUnreachable, VerificationError
from potluck.manifest import verify_manifest
from potluck.tlog import Checkpoint, MerkleTree, leaf_hash, parse_verifier_key, verify_checkpoint, verify_consistency
from potluck.tracker_client import DEFAULT_RPC_TIMEOUT, TrackerClient

from .compare import ComparedCheckpoint, load_compared_checkpoint, locate_split
from .history import describe_divergence, describe_edit
from .policy import PolicyReplay
from .problems import Problem
from .replay import Replay
from .state import AuditState, StateError

__all__ = ["AuditConfig", "AuditResult", "ProgressBase", "verify_log"]

_CREDIT_COLUMNS = ("granted", "escrow", "vested", "forfeited", "data_granted", "data_escrow", "data_vested",
                   "data_forfeited")
_BALANCE_FIELDS = (*(f"{column}_flops" for column in _CREDIT_COLUMNS), "strikes", "banned")


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """What `potluck audit verify` was asked to do; flags map onto fields one to one."""

    tracker: str
    log_key: str  # verifier key text, already read (`read_log_key`)
    state_dir: Path
    compare: tuple[Path, ...] = ()
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT
    num_threads: int | None = None
    lead_key: bytes | None = None  # given: the policy is checked against the manifest it signed


class ProgressBase:
    """Told how far the replay has got; the CLI draws a bar, library callers may ignore it."""

    def start(self, total: int, description: str) -> None: ...

    def advance(self, amount: int) -> None: ...


@dataclass
class AuditResult:
    """What an audit found. `ok` only when there are no problems."""

    tracker: str
    origin: str
    state_dir: Path
    tree_size: int | None = None
    root_hash: bytes | None = None
    previous_size: int = 0
    num_new_entries: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evidence: list[Path] = field(default_factory=list)
    accounts: dict[str, AccountBalance] = field(default_factory=dict)
    flops_per_credit: int | None = None
    balances_compared: bool = False
    policy_checked: bool = False
    num_compared: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase: download, replay

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        def balance(a: AccountBalance) -> dict:
            out = {name: getattr(a, name) for name in _BALANCE_FIELDS}
            if self.flops_per_credit:
                for name in _CREDIT_COLUMNS:
                    out[f"{name}_credits"] = credits_text(getattr(a, f"{name}_flops"), self.flops_per_credit)
            return out

        return {
            "ok": self.ok,
            "tracker": self.tracker,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": self.root_hash.hex() if self.root_hash is not None else None,
            "previous_size": self.previous_size,
            "new_entries": self.num_new_entries,
            "balances_compared": self.balances_compared,
            "policy_checked": self.policy_checked,
            "compared_checkpoints": self.num_compared,
            "problems": [p.to_json() for p in self.problems],
            "warnings": self.warnings,
            "evidence": [str(p) for p in self.evidence],
            "state": str(self.state_dir),
            "flops_per_credit": self.flops_per_credit,
            "timings": {name: round(seconds, 3) for name, seconds in self.timings.items()},
            "accounts": {a.account_id: balance(a) for a in sorted(self.accounts.values(), key=lambda a: a.account_id)},
        }


def verify_log(config: AuditConfig, *, progress: ProgressBase | None = None) -> AuditResult:
    """Run one audit (see the module docstring). Problems with the log are in the result; a tracker that
    cannot be reached or a bad input raises `PotluckError`."""
    compared = [load_compared_checkpoint(path, config.log_key) for path in config.compare]
    with AuditState(config.state_dir) as state, TrackerClient(config.tracker, rpc_timeout=config.rpc_timeout) as client:
        return _Audit(config, state, client, progress or ProgressBase()).run(compared)


class _Audit:
    def __init__(self, config: AuditConfig, state: AuditState, client: TrackerClient, progress: ProgressBase):
        self.config, self.state, self.client, self.progress = config, state, client, progress
        self.log_key = config.log_key
        self.origin = parse_verifier_key(config.log_key)[0]
        self.result = AuditResult(tracker=config.tracker, origin=self.origin, state_dir=state.directory)

    def problem(self, kind: str, message: str) -> None:
        self.result.problems.append(Problem(kind, message))

    def run(self, compared: list[ComparedCheckpoint]) -> AuditResult:
        saved = self.state.load(self.log_key)
        note = self.client.checkpoint()
        try:
            served = verify_checkpoint(note, self.log_key)
        except VerificationError as exc:
            self.problem("checkpoint", f"the tracker's checkpoint does not verify: {exc}")
            return self.result
        self.result.tree_size, self.result.root_hash = served.size, served.root_hash
        tree = MerkleTree()
        if saved is not None:
            saved_note, saved_checkpoint, tree = saved
            self.result.previous_size = saved_checkpoint.size
            if not self._extends(saved_note, saved_checkpoint, tree, note, served):
                return self.result
        old_size = tree.size
        if self._replay(tree, served):
            self._check_root(tree, old_size, served)
        for other in compared:
            self._compare(other, note, served, tree)
        self.result.num_compared = len(compared)
        if self.result.ok:
            self.state.commit(note, old_size)
        return self.result

    # --- 2. history -------------------------------------------------------------------------------

    def _extends(self, saved_note: str, saved: Checkpoint, local: MerkleTree, note: str, served: Checkpoint) -> bool:
        """Whether the served checkpoint extends the saved one; if not, record why and where."""
        m, n = saved.size, served.size
        if n < m:
            kind = "rollback"
            message = (f"rollback: the tracker's checkpoint has size {n}, but this auditor already verified a "
                       f"checkpoint of size {m}")
        elif n == m:
            if served.root_hash == saved.root_hash:
                return True
            kind = "split-view"
            message = (f"split view: the tracker's checkpoint of size {n} has root {served.root_hash.hex()[:16]}…, "
                       f"but the one this auditor verified at that size has root {saved.root_hash.hex()[:16]}…")
        else:
            try:
                verify_consistency(m, n, saved.root_hash, served.root_hash, self.client.consistency_proof(m, n))
                return True
            except (VerificationError, TrackerError) as exc:
                if isinstance(exc, TrackerUnreachable):
                    raise
                kind = "fork"
                message = (f"fork: the tracker's checkpoint of size {n} does not extend the one of size {m} "
                           f"this auditor verified: {exc}")
        folder = self.state.save_evidence(kind, {"verified": saved_note, "served": note})
        self.result.evidence.append(folder)
        self.problem(kind, f"{message} (both signed checkpoints kept in {folder})")
        self._locate_divergence(local, n)
        return False

    def _locate_divergence(self, local: MerkleTree, served_size: int) -> None:
        size = min(local.size, served_size)
        try:
            served = [leaf_hash(data) for chunk in self.client.entries(0, size) for data in chunk]
        except (TrackerError, VerificationError) as exc:
            self.problem("fork", f"could not fetch the served entries to find where the histories part: {exc}")
            return
        found = describe_divergence([local.leaf_hash(i) for i in range(local.size)], served, new_size=served_size)
        if found is None:
            return
        index, message = found
        if " edited: " in message:
            detail = self._edit_detail(index)
            message += f" ({detail})" if detail else ""
        self.problem("entry", message)

    def _edit_detail(self, index: int) -> str:
        try:
            old = [data for chunk in self.state.local_entries(index + 1) for data in chunk][index]
            (new,) = next(self.client.entries(index, index + 1))
        except (TrackerError, VerificationError, StateError):
            return ""
        return describe_edit(old, new)

    # --- 3 and 4. entries, root and replay -------------------------------------------------------

    def _replay(self, tree: MerkleTree, served: Checkpoint) -> bool:
        """Download the new entries, then replay them after the local copy; True if every entry arrived."""
        old_size = tree.size
        started = time.perf_counter()
        complete = self._download(tree, served.size)
        self.result.timings["download"] = time.perf_counter() - started
        started = time.perf_counter()
        policy = self._policy()
        replay = Replay(self.origin, num_threads=self.config.num_threads, policy=policy)
        self.progress.start(tree.size, "replaying entries")
        try:
            for chunk in self.state.local_entries(old_size):
                replay.feed(chunk)
                self.progress.advance(len(chunk))
            for chunk in self.state.staged_entries(tree.size - old_size):
                replay.feed(chunk)
                self.progress.advance(len(chunk))
            replay.finish()
        finally:
            replay.close()
        self.result.timings["replay"] = time.perf_counter() - started
        self.result.problems.extend(replay.problems)
        self.result.policy_checked = policy is not None
        self.result.accounts = replay.balances.accounts
        if complete:
            self._check_balances(replay, served.size)
        return complete

    def _policy(self) -> PolicyReplay | None:
        """The lead's signed manifest, fetched and checked, to replay the policy against; None without a lead key."""
        if self.config.lead_key is None:
            return None
        try:
            manifest = verify_manifest(self.client.manifest().signed_manifest, lead_key=self.config.lead_key).manifest
        except VerificationError as e:
            raise VerificationError(f"the tracker's manifest: {e}") from None
        if manifest.origin != self.origin:
            raise VerificationError(f"the tracker's manifest is for origin {manifest.origin!r}, the log key for "
                                    f"{self.origin!r}")
        return PolicyReplay(manifest)

    def _download(self, tree: MerkleTree, size: int) -> bool:
        """Fetch entries tree.size..size-1 into the tree and the state's staging file; False if some are missing.

        Not overlapped with the replay: a stream delivers one message per entry, and every one of them
        would wait for the GIL behind the replay's threads.
        """
        self.progress.start(size - tree.size, "downloading entries")
        try:
            for chunk in self.client.entries(tree.size, size):
                tree.extend(leaf_hash(data) for data in chunk)
                self.state.stage_new_entries(chunk)
                self.progress.advance(len(chunk))
                self.result.num_new_entries += len(chunk)
        except VerificationError as exc:
            self.problem("entry", str(exc))
            return False
        return True

    def _check_root(self, tree: MerkleTree, old_size: int, served: Checkpoint) -> None:
        if tree.root() == served.root_hash:
            return
        self.problem("root", f"entries {old_size}..{served.size - 1} as served do not hash to the root of the "
                             f"tracker's checkpoint of size {served.size}")
        bad = self._first_unproven(tree, old_size, served)
        if bad is not None:
            self.problem("entry", f"entry {bad}: does not match the tracker's signed checkpoint: the bytes served "
                                  "differ from the ones it signed (altered after signing or in transit)")

    def _first_unproven(self, tree: MerkleTree, good: int, served: Checkpoint) -> int | None:
        """Binary search, by consistency proofs against the signed root, for the first entry that is wrong.

        The entries below `good` are known to be right; those below `bad` are known not to be.
        """
        bad = served.size
        try:
            while bad - good > 1:
                mid = (good + bad) // 2
                try:
                    proof = self.client.consistency_proof(mid, served.size)
                    verify_consistency(mid, served.size, tree.root(mid), served.root_hash, proof)
                    good = mid
                except VerificationError:
                    bad = mid
        except TrackerError as exc:
            if isinstance(exc, TrackerUnreachable):
                raise
            return None
        return good

    def _check_balances(self, replay: Replay, size: int) -> None:
        answer = self.client.balances()
        self.result.flops_per_credit = answer.flops_per_credit
        if answer.tree_size > size:
            self.result.warnings.append(
                f"balances not compared: the tracker answered at tree size {answer.tree_size}, but the checkpoint "
                f"verified has size {size} (the log grew meanwhile; run the audit again)")
            return
        if answer.tree_size < size:
            self.problem("balance", f"the tracker gave balances at tree size {answer.tree_size}, smaller than its "
                                    f"own checkpoint of size {size}")
            return
        theirs = {b.account_id: b for b in answer.balances}
        ours = replay.balances.accounts
        for account_id in sorted(ours.keys() | theirs.keys()):
            mine, given = ours.get(account_id), theirs.get(account_id)
            if given is None:
                self.problem("balance", f"balance of account {account_id}: the tracker lists no balance, the log "
                                        f"grants it {mine.granted_flops} flops")
                continue
            if mine is None:
                self.problem("balance", f"balance of account {account_id}: the tracker lists a balance, but the "
                                        "log never mentions the account")
                continue
            for name in _BALANCE_FIELDS:
                want, got = getattr(mine, name), getattr(given, name)
                if want != got:
                    self.problem("balance", f"balance of account {account_id}: expected {name} {want} "
                                            f"(recomputed from the log), the tracker says {got}")
        self.result.balances_compared = True

    # --- 5. other auditors' checkpoints ---------------------------------------------------------------

    def _compare(self, other: ComparedCheckpoint, note: str, served: Checkpoint, tree: MerkleTree) -> None:
        m, n = other.checkpoint.size, served.size
        where = f"--compare {other.path}"
        try:
            if m == n:
                if other.checkpoint.root_hash == served.root_hash:
                    return
                raise VerificationError(f"both have size {n}, but their roots differ: "
                                        f"{other.checkpoint.root_hash.hex()[:16]}… and {served.root_hash.hex()[:16]}…")
            if m < n:
                verify_consistency(m, n, other.checkpoint.root_hash, served.root_hash,
                                   self.client.consistency_proof(m, n))
            else:
                verify_consistency(n, m, served.root_hash, other.checkpoint.root_hash,
                                   self.client.consistency_proof(n, m))
            return
        except TrackerError as exc:
            if isinstance(exc, TrackerUnreachable):
                raise
            message = f"the tracker (now at size {n}) cannot prove its log consistent with size {m}: {exc}"
        except VerificationError as exc:
            message = f"the two checkpoints are not of one history: {exc}"
        folder = self.state.save_evidence("split-view", {"compared": other.note, "served": note})
        self.result.evidence.append(folder)
        self.problem("split-view", f"split view: {where} (size {m}) and the tracker's checkpoint (size {n}) "
                                   f"disagree: {message} (both signed checkpoints kept in {folder})")
        if tree.size == n and tree.root() == served.root_hash:
            found = locate_split(other, tree, n)
            if found is not None:
                self.problem("entry", found[1])
