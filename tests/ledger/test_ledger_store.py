"""The ledger over real stores (SQLite and PostgreSQL): durable, idempotent, provable, and refusing
to contradict a checkpoint it already signed."""

import pytest
from ledgerkit import FLOPS_PER_SAMPLE, ORIGIN, grant, vest
from nacl.signing import SigningKey

from potluck.errors import VerificationError
from potluck.identity import AccountKey
from potluck.tlog import (
    leaf_hash,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)
from potluck.tracker.ledger.ledger import Ledger, LedgerCorruptError, LedgerRangeError
from potluck.tracker.ledger.store import open_store

pytestmark = pytest.mark.timeout(120)

LOG_KEY = SigningKey(b"\x07" * 32)
ALICE, BOB = AccountKey.generate(), AccountKey.generate()


def open_ledger(location) -> Ledger:
    return Ledger(open_store(location), origin=ORIGIN, log_key=LOG_KEY)


def test_append_prove_and_reopen(store_location):
    ledger = open_ledger(store_location)
    first = ledger.append([grant(ALICE, 1), grant(BOB, 1)])
    note1 = ledger.checkpoint()
    more = ledger.append([grant(ALICE, i) for i in range(2, 40)])
    assert first == [0, 1] and more == list(range(2, 40))
    note2 = ledger.checkpoint()
    cp1 = verify_checkpoint(note1, ledger.verifier_key)
    cp2 = verify_checkpoint(note2, ledger.verifier_key)
    assert (cp1.size, cp2.size) == (2, 40)
    verify_consistency(2, 40, cp1.root_hash, cp2.root_hash, ledger.consistency_proof(2, 40))
    for index, data in enumerate(ledger.entries(0, 40)):
        verify_inclusion(leaf_hash(data), index, 40, ledger.inclusion_proof(index, 40), cp2.root_hash)
    index, entry, checkpoint = verify_receipt(ledger.receipt(7), ledger.verifier_key)
    assert index == 7 and entry == ledger.entries(7, 8)[0] and checkpoint.size == 40
    ledger.store.close()

    reopened = open_ledger(store_location)
    assert reopened.size == 40 and reopened.tree.root() == cp2.root_hash
    assert reopened.checkpoint() == note2  # nothing new: the same signed note
    alice = reopened.balances.accounts[ALICE.account_id]
    assert alice.granted_flops == alice.escrow_flops == 39 * 64 * FLOPS_PER_SAMPLE
    reopened.store.close()


def test_same_report_bytes_get_the_same_index_and_one_entry(store_location):
    ledger = open_ledger(store_location)
    entry = grant(ALICE, 1)
    assert ledger.append([entry]) == [0]
    assert ledger.append([grant(BOB, 1), entry, entry]) == [1, 0, 0]
    assert ledger.size == 2
    again = grant(ALICE, 1, report=entry.grant.report)  # same bytes, another logged_at: still a duplicate
    assert ledger.append([again]) == [0] and ledger.size == 2
    ledger.store.close()
    assert open_ledger(store_location).append([entry]) == [0]


def test_vesting_moves_escrow_and_bad_releases_are_refused(store_location):
    ledger = open_ledger(store_location)
    ledger.append([grant(ALICE, 1), grant(ALICE, 2)])
    flops = 64 * FLOPS_PER_SAMPLE
    ledger.append([vest(ALICE, [0], flops)])
    alice = ledger.balances.accounts[ALICE.account_id]
    assert (alice.escrow_flops, alice.vested_flops) == (flops, flops)
    with pytest.raises(VerificationError, match="names grant 0, which is not in"):
        ledger.balances.apply(ledger.size, vest(ALICE, [0], flops))
    ledger.store.close()


def test_reads_out_of_range_are_refused(store_location):
    ledger = open_ledger(store_location)
    ledger.append([grant(ALICE, 1)])
    for read in (lambda: ledger.entries(0, 2), lambda: ledger.inclusion_proof(1, 1),
                 lambda: ledger.consistency_proof(1, 5), lambda: ledger.receipt(3), lambda: ledger.entries(1, 0)):
        with pytest.raises(LedgerRangeError, match="the log has 1"):
            read()
    ledger.store.close()


def test_entries_for_another_swarm_are_refused(store_location):
    ledger = open_ledger(store_location)
    with pytest.raises(VerificationError, match="expected entry origin"):
        ledger.append([grant(ALICE, 1, origin="another-swarm")])
    assert ledger.size == 0
    ledger.store.close()


def test_store_that_contradicts_a_signed_checkpoint_is_refused(tmp_path):
    location = tmp_path / "ledger.sqlite"
    ledger = open_ledger(location)
    ledger.append([grant(ALICE, i) for i in range(5)])
    ledger.checkpoint()
    # Someone rewrites history under the tracker: swap one entry for another.
    ledger.store.db.execute("UPDATE entries SET leaf_hash = ? WHERE idx = 2", (b"\x00" * 32,))
    ledger.store.close()
    with pytest.raises(LedgerCorruptError, match="disagree with the signed checkpoint of size 5"):
        open_ledger(location)


def test_a_checkpoint_from_another_key_is_refused(tmp_path):
    location = tmp_path / "ledger.sqlite"
    ledger = open_ledger(location)
    ledger.append([grant(ALICE, 1)])
    ledger.checkpoint()
    ledger.store.close()
    with pytest.raises(LedgerCorruptError, match="does not verify with this log's key"):
        Ledger(open_store(location), origin=ORIGIN, log_key=SigningKey(b"\x08" * 32))
