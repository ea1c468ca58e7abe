"""Comparing notes with other auditors: a checkpoint someone else verified must be consistent with ours.

A tracker that shows two auditors two histories (a split view) signs two checkpoints that no
consistency proof can join. Each auditor alone sees a log that verifies; comparing the notes they
saved shows the lie. If the other auditor's `entries` file lies next to its checkpoint (a state or
export directory), the first entry where the two histories part is named too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from potluck.errors import ConfigError, VerificationError
from potluck.tlog.checkpoint import Checkpoint, verify_checkpoint
from potluck.tlog.merkle import MerkleTree, leaf_hash

from .history import describe_divergence
from .state import ENTRIES_FILE, StateError, read_entry_chunks

__all__ = ["ComparedCheckpoint", "load_compared_checkpoint", "locate_split"]


@dataclass(frozen=True)
class ComparedCheckpoint:
    """A checkpoint note another auditor saved, verified against the log key."""

    path: Path
    note: str
    checkpoint: Checkpoint


def load_compared_checkpoint(path: Path, log_key: str) -> ComparedCheckpoint:
    """Read and verify a `--compare` file; raises `ConfigError` if it is not a checkpoint of this log."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint"
    try:
        note = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--compare {path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        checkpoint = verify_checkpoint(note, log_key)
    except VerificationError as exc:
        raise ConfigError(f"--compare {path}: not a checkpoint signed by the log key: {exc}") from None
    return ComparedCheckpoint(path, note, checkpoint)


def locate_split(compared: ComparedCheckpoint, ours: MerkleTree, served_size: int) -> tuple[int, str] | None:
    """Name the first entry where the other auditor's history departs from ours, if its entries are at hand.

    Only entries that hash to the other auditor's signed root are used, so a stray file cannot mislead.
    """
    entries_path = compared.path.parent / ENTRIES_FILE
    if not entries_path.is_file():
        return None
    theirs = MerkleTree()
    try:
        for chunk in read_entry_chunks(entries_path, compared.checkpoint.size):
            theirs.extend(leaf_hash(data) for data in chunk)
    except StateError:
        return None
    if theirs.root() != compared.checkpoint.root_hash:
        return None
    size = min(theirs.size, ours.size)
    return describe_divergence([theirs.leaf_hash(i) for i in range(theirs.size)],
                               [ours.leaf_hash(i) for i in range(size)], new_size=served_size,
                               old_name=f"the auditor of {compared.path} verified")
