"""One writer per database, and a high-water mark that never wedges a restart.

A second store on a database another one has open is refused (SQLite: a flock beside the file;
PostgreSQL: an advisory lock on the connection), else two trackers would each append at the same
indices. The mark is written before a checkpoint is signed, so a crash between the two leaves the
mark ahead of the stored checkpoints; the next start must take that, not refuse it.
"""

import pytest
from ledgerkit import ORIGIN, grant
from nacl.signing import SigningKey

from potluck.identity import AccountKey
from potluck.tlog import verify_checkpoint
from potluck.tracker.ledger import HighWaterMark, Ledger, LedgerForkError, LedgerLockedError, open_store

pytestmark = pytest.mark.timeout(60)

LOG_KEY = SigningKey(b"\x0a" * 32)
ALICE = AccountKey.generate()


def test_a_second_store_on_one_database_is_refused_until_the_first_closes(store_location):
    first = open_store(store_location)
    with pytest.raises(LedgerLockedError, match="^another tracker holds the ledger database") as refused:
        open_store(store_location)
    assert "\n" not in str(refused.value)
    first.close()
    open_store(store_location).close()


def test_another_path_to_the_same_sqlite_file_is_refused(tmp_path):
    first = open_store(tmp_path / "ledger.sqlite")
    (tmp_path / "link.sqlite").symlink_to(tmp_path / "ledger.sqlite")
    try:
        with pytest.raises(LedgerLockedError):
            open_store(tmp_path / "link.sqlite")
    finally:
        first.close()


def test_a_crash_between_the_mark_and_the_checkpoint_does_not_wedge_the_next_start(store_location, tmp_path):
    mark = tmp_path / "log.mark"
    ledger = Ledger(open_store(store_location), origin=ORIGIN, log_key=LOG_KEY, mark=HighWaterMark(mark))
    ledger.append([grant(ALICE, i) for i in range(1, 4)])
    assert verify_checkpoint(ledger.checkpoint(), ledger.verifier_key).size == 3
    ledger.append([grant(ALICE, i) for i in range(4, 9)])
    # What `checkpoint` does first, and then the crash: the mark says 8, no checkpoint of size 8 is stored.
    ledger.mark.advance(ledger.size, ledger.tree.root())
    ledger.store.close()
    assert mark.read_text().split()[0] == "8"

    reopened = Ledger(open_store(store_location), origin=ORIGIN, log_key=LOG_KEY, mark=HighWaterMark(mark))
    assert verify_checkpoint(reopened.checkpoint(), reopened.verifier_key).root_hash == reopened.tree.root(8)
    reopened.store.close()


def test_a_damaged_mark_refuses_to_open(store_location, tmp_path):
    mark = tmp_path / "log.mark"
    mark.write_text("forty\n")
    with pytest.raises(LedgerForkError, match="high-water mark is corrupt"):
        Ledger(open_store(store_location), origin=ORIGIN, log_key=LOG_KEY, mark=HighWaterMark(mark))
    open_store(store_location).close()  # the refused ledger let go of its store
