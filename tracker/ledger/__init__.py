"""The credit log on the lead's side: its store (SQLite or PostgreSQL), the `Ledger` over it (Merkle tree,
signed checkpoints, receipts), its single writer, and its key. The pure log code it builds on is
`potluck.tlog`, which auditors share."""

from .ledger import MAX_ENTRIES_PER_READ, Ledger, LedgerCorruptError, LedgerRangeError
from .ledger_writer import MAX_BATCH, LedgerWriter, Logged
from .logkey import LOG_KEY_FILE, LOG_PUB_FILE, load_or_create_log_key
from .store import LedgerStoreBase, StoredEntry, open_store

__all__ = [
    "LOG_KEY_FILE",
    "LOG_PUB_FILE",
    "MAX_BATCH",
    "MAX_ENTRIES_PER_READ",
    "Ledger",
    "LedgerCorruptError",
    "LedgerRangeError",
    "LedgerStoreBase",
    "LedgerWriter",
    "Logged",
    "StoredEntry",
    "load_or_create_log_key",
    "open_store",
]
