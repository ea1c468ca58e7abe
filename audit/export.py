"""`potluck audit export`: the log as served, in files anyone can re-verify without the tracker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from potluck.errors import ConfigError, VerificationError
from potluck.tlog.checkpoint import Checkpoint
from potluck.tlog.merkle import MerkleTree, leaf_hash
from potluck.tlog.note import split_note
from potluck.tracker_client import TrackerClient

from .state import CHECKPOINT_FILE, ENTRIES_FILE, encode_entry_lines, write_state_file

__all__ = ["ExportResult", "export_log"]


@dataclass(frozen=True)
class ExportResult:
    checkpoint_path: Path
    entries_path: Path
    tree_size: int
    root_hash: bytes


def export_log(client: TrackerClient, out: Path, *, force: bool = False, progress=None) -> ExportResult:
    """Write `out/checkpoint` (the note as served) and `out/entries` (one base64 line per entry, in order).

    The entries must hash to the checkpoint's root, or nothing is written; the checkpoint's signature is
    left to whoever reads the export (`audit verify` or `audit receipt` with the pinned key).
    """
    out = Path(out)
    checkpoint_path, entries_path = out / CHECKPOINT_FILE, out / ENTRIES_FILE
    if not force and (checkpoint_path.exists() or entries_path.exists()):
        raise ConfigError(f"{out}: already holds an export; pass --force to replace it")
    note = client.checkpoint()
    body, _ = split_note(note)
    checkpoint = Checkpoint.parse(body)
    tmp = entries_path.with_name(f".{ENTRIES_FILE}.partial")
    tree = MerkleTree()
    if progress is not None:
        progress.start(checkpoint.size, "downloading entries")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            for chunk in client.entries(0, checkpoint.size):
                tree.extend(leaf_hash(data) for data in chunk)
                f.write(encode_entry_lines(chunk))
                if progress is not None:
                    progress.advance(len(chunk))
        if tree.root() != checkpoint.root_hash:
            raise VerificationError(f"the tracker's entries do not hash to the root of its checkpoint of size "
                                    f"{checkpoint.size}; nothing exported")
        tmp.replace(entries_path)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    write_state_file(checkpoint_path, note.encode("utf-8"))
    return ExportResult(checkpoint_path, entries_path, checkpoint.size, checkpoint.root_hash)
