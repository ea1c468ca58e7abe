"""The largest checkpoint this log key has signed, kept beside the key: the log's high-water mark.

The database alone cannot say what the key signed: a restored backup, or another `--db`, holds a
shorter or another history, and a tracker that trusted it would sign a checkpoint contradicting one
it signed before (a fork, which auditors catch and the lead cannot take back). `<state_dir>/log.mark`
travels with `log.key` instead, and says "size root" of the largest checkpoint signed. It is written
durably before each checkpoint is signed, and only over committed entries: so a crash between the two
leaves the mark ahead of the stored checkpoints, never ahead of the stored entries, and the next start
signs the same checkpoint again.
"""

from __future__ import annotations

from pathlib import Path

from potluck.atomic_file import write_file_atomically
from potluck.errors import PotluckError
from potluck.tlog import MerkleTree

MARK_FILE = "log.mark"


class LedgerForkError(PotluckError):
    """The database's history is not the one this log key already signed: opening it would fork the log."""


class HighWaterMark:
    """(size, root) of the largest checkpoint signed with the key beside it; size 0 before the first."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.size, self.root = 0, b""
        self.loaded = False  # read at the first check, inside the ledger's open (which lets go of a refused store)

    def _load(self) -> None:
        if self.loaded:
            return
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            self.loaded = True
            return
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerForkError(f"{self.path}: cannot read the log's high-water mark ({exc})") from None
        try:
            size, root = text.split()
            self.size, self.root = int(size), bytes.fromhex(root)
        except ValueError:
            # A damaged mark is not taken as "nothing signed yet": that would open any database.
            raise LedgerForkError(f"{self.path}: the log's high-water mark is corrupt (expected 'SIZE ROOTHEX', "
                                  f"got {text[:80]!r})") from None
        self.loaded = True

    def check(self, tree: MerkleTree, database: str) -> None:
        """Raise `LedgerForkError` unless `tree` (the database's) extends the marked checkpoint."""
        self._load()
        if self.size == 0:
            return
        if tree.size < self.size:
            raise LedgerForkError(
                f"the ledger database {database} holds {tree.size} entries but this log key already signed a "
                f"checkpoint of size {self.size} ({self.path}): a restored backup or another database; "
                "refusing to fork the log")
        if (root := tree.root(self.size)) != self.root:
            raise LedgerForkError(
                f"the ledger database {database} has root {root.hex()[:16]}… at size {self.size}, but this log "
                f"key already signed root {self.root.hex()[:16]}… there ({self.path}): another database's "
                "history; refusing to fork the log")

    def advance(self, size: int, root: bytes) -> None:
        """Durably record a checkpoint about to be signed (over committed entries only), if it is larger."""
        self._load()
        if size <= self.size:
            return
        write_file_atomically(self.path, f"{size} {root.hex()}\n".encode("ascii"), mode=0o644)
        self.size, self.root = size, root
