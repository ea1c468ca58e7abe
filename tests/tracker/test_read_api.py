"""The ledger's read API for logs of any size: balances in pages, entries in bounded reads.

Threat (issue 14): GetBalances built every account's balance in one message, on the event loop,
under the ledger's lock: past ~40k accounts it failed (the 4 MiB message limit), and anyone could
make the tracker walk them all as often as they liked.
"""

import pytest
from grpckit import ServerThread, tracker_channel
from ledgerkit import FLOPS_PER_CREDIT, ORIGIN, grant
from nacl.signing import SigningKey

from potluck.identity import AccountKey
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import LedgerStub
from potluck.tracker.ledger.ledger import Ledger
from potluck.tracker.ledger.store import open_store
from potluck.tracker.service.ledger_service import MAX_BALANCES_PER_PAGE, LedgerService
from potluck.tracker_client import TrackerClient

pytestmark = pytest.mark.timeout(120)
NUM_ACCOUNTS = 60_000  # past what one 4 MiB message holds (~45k)


@pytest.fixture(scope="module")
def big_ledger(tmp_path_factory):
    ledger = Ledger(open_store(tmp_path_factory.mktemp("big") / "l.sqlite"), origin=ORIGIN,
                    log_key=SigningKey(b"\x06" * 32))
    accounts = [AccountKey.generate() for _ in range(NUM_ACCOUNTS)]
    for start in range(0, NUM_ACCOUNTS, 5000):
        ledger.append([grant(account, 1) for account in accounts[start:start + 5000]])
    with ServerThread(ledger_service=LedgerService(ledger, FLOPS_PER_CREDIT)) as server:
        yield ledger, server.address
    ledger.store.close()


def test_every_balance_of_a_big_log_is_served_in_pages(big_ledger):
    ledger, address = big_ledger
    with tracker_channel(address) as channel:
        first = LedgerStub(channel).GetBalances(pb.BalancesRequest(page_size=10 * MAX_BALANCES_PER_PAGE), timeout=30)
    assert len(first.balances) == MAX_BALANCES_PER_PAGE and first.next_page_token  # the cap holds
    with TrackerClient(address) as client:
        answer = client.balances()
    ids = [b.account_id for b in answer.balances]
    assert ids == sorted(ledger.balances.accounts) and len(ids) == NUM_ACCOUNTS
    assert answer.tree_size == ledger.size
    assert {b.granted_flops for b in answer.balances} == {ledger.balances.accounts[ids[0]].granted_flops}

