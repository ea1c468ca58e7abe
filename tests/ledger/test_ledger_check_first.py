"""Every check runs before the insert: an entry the balances refuse is never stored, so the log still opens.

Without this, a refused entry (a vest of credit that is not in escrow, say) would be committed first and
refused after: the store would hold an entry that every later start refuses to fold, and the log would
never open again.
"""

import pytest
from ledgerkit import FLOPS_PER_SAMPLE, ORIGIN, grant, vest
from nacl.signing import SigningKey

from potluck.errors import VerificationError
from potluck.identity import AccountKey
from potluck.tracker.ledger.ledger import Ledger
from potluck.tracker.ledger.store import open_store

pytestmark = pytest.mark.timeout(60)

LOG_KEY = SigningKey(b"\x09" * 32)
ALICE = AccountKey.generate()
FLOPS = 64 * FLOPS_PER_SAMPLE


def test_a_refused_entry_is_not_stored_and_the_log_reopens(store_location):
    ledger = Ledger(open_store(store_location), origin=ORIGIN, log_key=LOG_KEY)
    ledger.append([grant(ALICE, 1), grant(ALICE, 2)])
    ledger.checkpoint()
    with pytest.raises(VerificationError, match="names grant 5, which is not in"):
        ledger.append([grant(ALICE, 3), vest(ALICE, [5], FLOPS)])  # one bad entry fails its whole batch
    # A vest of a grant logged earlier in the same batch passes: the check sees the batch in order.
    assert ledger.append([grant(ALICE, 3), vest(ALICE, [0, 2], 2 * FLOPS)]) == [2, 3]
    with pytest.raises(VerificationError, match="names grant 0, which is not in"):
        ledger.append([vest(ALICE, [0], FLOPS)])  # vested already
    assert ledger.size == 4 and len(ledger.store.leaf_hashes()) == 4
    ledger.store.close()

    reopened = Ledger(open_store(store_location), origin=ORIGIN, log_key=LOG_KEY)
    alice = reopened.balances.accounts[ALICE.account_id]
    assert reopened.size == 4 and (alice.escrow_flops, alice.vested_flops) == (FLOPS, 2 * FLOPS)
    assert reopened.append([vest(ALICE, [1], FLOPS)]) == [4]
    reopened.store.close()
