"""The credit log: entries in a store, their RFC 6962 tree in memory, checkpoints signed by the log key.

One `Ledger` is the only writer of its store. It signs a checkpoint only over entries already
committed, and never two checkpoints that disagree: at start-up it rebuilds the tree from the
store and refuses to run if the last checkpoint stored there, or the high-water mark kept beside the
log key (`HighWaterMark`: what the key signed, whatever database it signed it over), does not match it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from nacl.signing import SigningKey

from potluck.entries import Balances, decode_entry, dedup_key, serialize_entry
from potluck.errors import PotluckError, VerificationError
from potluck.proto.ledger_pb2 import LedgerEntry
from potluck.proto.wire import MAX_ENTRY_BYTES
from potluck.tlog import Checkpoint, MerkleTree, leaf_hash, sign_checkpoint, verifier_key_text, verify_checkpoint
from potluck.tlog.receipt import make_receipts
from potluck.tracker.ledger.high_water import HighWaterMark
from potluck.tracker.ledger.store import LedgerStoreBase, StoredEntry

logger = logging.getLogger(__name__)

MAX_ENTRIES_PER_READ = 10_000


class LedgerCorruptError(PotluckError):
    """The store disagrees with a checkpoint this log already signed; it must not sign another."""


class LedgerRangeError(PotluckError):
    """A read asked for indices or sizes the log does not have."""


class Ledger:
    """Append-only, idempotent, tamper-evident credit log.

    `balances` is the fold of its entries that its readers see (`Balances`, or the tracker's `Accounts`):
    at open every stored entry is restored into it, in one read of the store, and each appended entry
    is applied under `lock` as it is committed, so the balances always match `size`.
    """

    def __init__(self, store: LedgerStoreBase, *, origin: str, log_key: SigningKey, balances: Balances | None = None,
                 mark: HighWaterMark | None = None):
        self.store, self.origin, self.log_key = store, origin, log_key
        self.verifier_key = verifier_key_text(origin, log_key.verify_key)
        # `lock` guards the in-memory tree, balances and note; `append_lock` makes appends one at a time.
        # An append commits to the store holding only `append_lock`, so proofs, receipts and balances
        # (over committed entries, as before) are not held up by its fsync.
        self.lock = threading.RLock()
        self.append_lock = threading.Lock()
        self._appended: dict[int, bytes] = {}  # the last append's entry bytes, for its receipts
        # An append whose insert failed, while it is not known whether its rows landed: (rows, entries).
        self._unsettled: tuple[list[StoredEntry], list[LedgerEntry]] | None = None
        # Entries of such an append found landed only by a later one, (index, entry): their append failed, so
        # nothing followed from them yet (a grant's check, say); `take_landed_late` hands them to the owner.
        self._landed_late: list[tuple[int, LedgerEntry]] = []
        self.mark = mark
        try:
            self._open(store, balances)
        except BaseException:  # the store is the ledger's from here: a refused one is let go of (and its lock)
            store.close()
            raise

    def _open(self, store: LedgerStoreBase, balances: Balances | None) -> None:
        started = time.monotonic()
        self.tree = MerkleTree.from_leaf_hashes(store.leaf_hashes())
        self.balances = Balances() if balances is None else balances
        for start in range(0, self.tree.size, MAX_ENTRIES_PER_READ):
            for offset, data in enumerate(store.entries(start, start + MAX_ENTRIES_PER_READ)):
                self.balances.restore(start + offset, decode_entry(data, start + offset))
        self._note: str | None = None  # the latest signed checkpoint, while it covers the whole tree
        stored = self._check_last_checkpoint()
        if self.mark is not None:
            self.mark.check(self.tree, store.location)
            if stored is not None:  # signed before the mark was kept (or the mark is an older copy)
                self.mark.advance(stored.size, stored.root_hash)
        logger.info("ledger %s opened: %d entries in %.2fs", self.origin, self.tree.size, time.monotonic() - started)

    def _check_last_checkpoint(self) -> Checkpoint | None:
        latest = self.store.latest_checkpoint()
        if latest is None:
            return None
        size, note = latest
        try:
            checkpoint = verify_checkpoint(note, self.verifier_key, self.origin)
        except VerificationError as e:
            raise LedgerCorruptError(f"the last stored checkpoint does not verify with this log's key: {e}") from None
        if checkpoint.size != size or size > self.tree.size or checkpoint.root_hash != self.tree.root(size):
            raise LedgerCorruptError(
                f"the store holds {self.tree.size} entries, which disagree with the signed checkpoint of size "
                f"{checkpoint.size}; refusing to sign anything that contradicts it")
        if size == self.tree.size:
            self._note = note
        return checkpoint

    @property
    def size(self) -> int:
        return self.tree.size

    def append(self, entries: Sequence[LedgerEntry]) -> list[int]:
        """Durably append entries in one transaction; return each one's index.

        Idempotent: an entry carrying report or binding bytes that are already logged gets the
        index it was logged at, and nothing new is written.
        """
        with self.append_lock:
            if self._unsettled is not None:  # before `find`, which would see indices the tree does not have
                self._settle(self.balances.restore, late=True)
            keys = [dedup_key(entry) for entry in entries]
            known = self.store.find([k for k in keys if k is not None])
            indices, rows, decoded = [], [], []
            for entry, key in zip(entries, keys, strict=True):
                if key is not None and key in known:
                    indices.append(known[key])
                    continue
                if entry.origin != self.origin:
                    raise VerificationError(f"expected entry origin {self.origin!r}, got {entry.origin!r}")
                data = serialize_entry(entry)
                if len(data) > MAX_ENTRY_BYTES:
                    raise VerificationError(f"expected an entry of at most {MAX_ENTRY_BYTES} bytes, got {len(data)}")
                index = self.tree.size + len(rows)
                rows.append(StoredEntry(index, data, leaf_hash(data), key))
                decoded.append(entry)
                indices.append(index)
                if key is not None:
                    known[key] = index
            if rows:
                # Every check before the insert: a refused entry must never reach the store (it would
                # be refused again at every start, and the log would not open).
                self.balances.check(self.tree.size, decoded)
                try:
                    self.store.insert(rows)
                except Exception:
                    self._unsettled = (rows, decoded)
                    # Ask at once whether it landed (a store that lost its connection reconnects to answer):
                    # if it did, this append succeeded; if not, or if no answer comes, it failed, and the next
                    # append asks again before anything else.
                    try:
                        landed = self._settle(self.balances.apply)
                    except Exception:
                        logger.exception("could not find out whether entries %d.. landed", rows[0].index)
                        landed = False
                    if not landed:
                        raise
                else:
                    self._extend(rows, decoded, self.balances.apply)
            return indices

    def _extend(self, rows: list[StoredEntry], decoded: list[LedgerEntry], fold) -> None:
        """Committed rows join the tree, and their entries the balances (by `fold`)."""
        with self.lock:
            self._note = None
            self.tree.extend(row.leaf_hash for row in rows)
            for row, entry in zip(rows, decoded, strict=True):
                fold(row.index, entry)
            self._appended = {row.index: row.data for row in rows}

    def _settle(self, fold, *, late: bool = False) -> bool:
        """After a failed insert: whether its rows landed after all (True: the tree and the balances now
        have them, by `fold`); raise if the store cannot say, or holds rows this ledger did not write.
        `late`: their own append failed already, so they are kept for `take_landed_late`."""
        rows, decoded = self._unsettled
        landed = self.store.leaf_hashes(self.tree.size)
        if landed and landed != [row.leaf_hash for row in rows]:
            raise LedgerCorruptError(
                f"the ledger database {self.store.location} holds {len(landed)} entries from index "
                f"{self.tree.size} that this tracker did not write (another writer?); refusing to go on")
        self._unsettled = None
        if landed:
            logger.warning("entries %d..%d landed although their commit failed", rows[0].index, rows[-1].index)
            self._extend(rows, decoded, fold)
            if late:
                self._landed_late += [(row.index, entry) for row, entry in zip(rows, decoded, strict=True)]
        return bool(landed)

    def take_landed_late(self) -> list[tuple[int, LedgerEntry]]:
        """(index, entry) of entries whose append failed but which were found landed later (oldest first),
        each handed out once. Without this, a grant whose COMMIT landed unseen would be credited (restored
        into the balances) but never checked: it would vest on escrow depth alone."""
        with self.append_lock:
            taken, self._landed_late = self._landed_late, []
            return taken

    def checkpoint(self) -> str:
        """A signed checkpoint note over every committed entry (signed afresh only when the log grew)."""
        with self.lock:
            if self._note is None:
                checkpoint = Checkpoint(self.origin, self.tree.size, self.tree.root())
                if self.mark is not None:  # first the mark, durably: a crash after it must not forget it
                    self.mark.advance(checkpoint.size, checkpoint.root_hash)
                note = sign_checkpoint(checkpoint, self.log_key)
                self.store.save_checkpoint(checkpoint.size, note)
                self._note = note
            return self._note

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entry bytes for indices start..end-1, verbatim."""
        self._check_range(start, end)
        return self.store.entries(start, end)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self.lock:
            if not 0 <= index < size <= self.tree.size:
                raise LedgerRangeError(f"no entry {index} in a tree of size {size} (the log has {self.tree.size})")
            return self.tree.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        with self.lock:
            if not 0 <= old_size <= new_size <= self.tree.size:
                raise LedgerRangeError(
                    f"no consistency proof from size {old_size} to {new_size} (the log has {self.tree.size})")
            return self.tree.consistency_proof(old_size, new_size)

    def receipt(self, index: int) -> str:
        """A C2SP tlog-proof receipt proving entry `index` against the latest checkpoint."""
        return self.receipts([index])[1][0]

    def receipts(self, indices: Sequence[int]) -> tuple[str, list[str]]:
        """Receipts for many entries against one checkpoint over every committed entry: (its note, receipts).

        The entries of the latest append are proven without reading them back from the store.
        """
        with self.lock:
            note = self.checkpoint()
            size = self.tree.size
            entries = []
            for index in indices:
                if not 0 <= index < size:
                    raise LedgerRangeError(f"no entry {index} (the log has {size})")
                data = self._appended.get(index)
                if data is None:
                    (data,) = self.store.entries(index, index + 1)
                entries.append(data)
            proofs = self.tree.inclusion_proofs(indices, size)
            return note, make_receipts(list(zip(entries, indices, proofs, strict=True)), note)

    def _check_range(self, start: int, end: int) -> None:
        if not 0 <= start <= end <= self.tree.size:
            raise LedgerRangeError(f"no entries {start}..{end} (the log has {self.tree.size})")
        if end - start > MAX_ENTRIES_PER_READ:
            raise LedgerRangeError(f"at most {MAX_ENTRIES_PER_READ} entries per read (asked for {end - start})")
