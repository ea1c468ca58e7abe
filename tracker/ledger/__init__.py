"""The credit log on the lead's side: its store (SQLite or PostgreSQL), the `Ledger` over it (Merkle tree,
signed checkpoints, receipts), its single writer and the locks that keep it single, its key and the
high-water mark kept beside the key. The pure log code it builds on is
`potluck.tlog`, which auditors share."""

from .high_water import MARK_FILE, HighWaterMark, LedgerForkError
from .ledger import MAX_ENTRIES_PER_READ, Ledger, LedgerCorruptError, LedgerRangeError
from .ledger_writer import MAX_BATCH, LedgerCommitError, LedgerWriter, Logged
from .logkey import LOG_KEY_FILE, LOG_PUB_FILE, load_or_create_log_key
from .store import LedgerStoreBase, LedgerUnavailableError, StoredEntry, open_store
from .writer_lock import STATE_DIR_LOCK_FILE, LedgerLockedError, WriterLock

__all__ = [
    "LOG_KEY_FILE",
    "LOG_PUB_FILE",
    "MARK_FILE",
    "MAX_BATCH",
    "MAX_ENTRIES_PER_READ",
    "STATE_DIR_LOCK_FILE",
    "HighWaterMark",
    "Ledger",
    "LedgerCommitError",
    "LedgerCorruptError",
    "LedgerForkError",
    "LedgerLockedError",
    "LedgerRangeError",
    "LedgerStoreBase",
    "LedgerUnavailableError",
    "LedgerWriter",
    "Logged",
    "StoredEntry",
    "WriterLock",
    "load_or_create_log_key",
    "open_store",
]
