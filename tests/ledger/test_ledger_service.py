"""The ledger read API over a real gRPC server: answers that verify, precise statuses for bad requests."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpckit import ServerThread, tracker_channel
from ledgerkit import FLOPS_PER_CREDIT, ORIGIN, grant
from nacl.signing import SigningKey

from potluck.identity import AccountKey
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import LedgerStub
from potluck.tlog import leaf_hash, verify_checkpoint, verify_consistency, verify_inclusion, verify_receipt
from potluck.tracker.ledger.ledger import Ledger
from potluck.tracker.ledger.store import open_store
from potluck.tracker.service.ledger_service import LedgerService

pytestmark = pytest.mark.timeout(60)
ALICE = AccountKey.generate()


@pytest.fixture
def served(tmp_path):
    ledger = Ledger(open_store(tmp_path / "l.sqlite"), origin=ORIGIN, log_key=SigningKey(b"\x05" * 32))
    ledger.append([grant(ALICE, i) for i in range(1, 2501)])
    with ServerThread(ledger_service=LedgerService(ledger, FLOPS_PER_CREDIT)) as server, \
            tracker_channel(server.address) as channel:
        yield ledger, LedgerStub(channel), channel
    ledger.store.close()


def test_answers_verify(served):
    ledger, stub, _ = served
    note = stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=10).checkpoint
    checkpoint = verify_checkpoint(note, ledger.verifier_key)
    assert checkpoint.size == 2500
    batches = list(stub.GetEntries(pb.EntriesRequest(start=0, end=2500), timeout=30))
    assert [b.start for b in batches] == [0, 1000, 2000]
    entries = [data for batch in batches for data in batch.entries]
    assert entries == ledger.entries(0, 2500)
    old_root = ledger.tree.root(1000)
    proof = stub.GetConsistencyProof(pb.ConsistencyProofRequest(old_size=1000, new_size=2500), timeout=10).hashes
    verify_consistency(1000, 2500, old_root, checkpoint.root_hash, list(proof))
    receipt = stub.GetReceipt(pb.ReceiptRequest(index=1234), timeout=10).receipt
    index, entry, _ = verify_receipt(receipt, ledger.verifier_key)
    assert index == 1234 and entry == entries[1234]
    verify_inclusion(leaf_hash(entry), 1234, 2500, ledger.inclusion_proof(1234, 2500), checkpoint.root_hash)
    balances = stub.GetBalances(pb.BalancesRequest(account_id=ALICE.account_id), timeout=10)
    assert balances.tree_size == 2500 and balances.balances[0].granted_flops == ledger.balances.accounts[
        ALICE.account_id].granted_flops


@pytest.mark.parametrize(("call", "request_", "code", "reason"), [
    ("GetConsistencyProof", pb.ConsistencyProofRequest(old_size=5, new_size=9999), grpc.StatusCode.OUT_OF_RANGE,
     "the log has 2500"),
    ("GetConsistencyProof", pb.ConsistencyProofRequest(old_size=9, new_size=5), grpc.StatusCode.INVALID_ARGUMENT,
     "larger than new_size"),
    ("GetReceipt", pb.ReceiptRequest(index=2500), grpc.StatusCode.OUT_OF_RANGE, "no entry 2500"),
    ("GetEntries", pb.EntriesRequest(start=10, end=2), grpc.StatusCode.INVALID_ARGUMENT, "start 10 is after end 2"),
    ("GetEntries", pb.EntriesRequest(start=0, end=2501), grpc.StatusCode.OUT_OF_RANGE, "the log has 2500"),
    ("GetBalances", pb.BalancesRequest(account_id="x\ny"), grpc.StatusCode.INVALID_ARGUMENT, "64 hex digits"),
])
def test_bad_requests_get_precise_statuses_and_the_server_stays_up(served, call, request_, code, reason):
    _, stub, _ = served
    with pytest.raises(grpc.RpcError) as err:
        response = getattr(stub, call)(request_, timeout=10)
        list(response) if call == "GetEntries" else response
    assert err.value.code() == code and reason in err.value.details()
    assert stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=10).checkpoint


def test_health_and_reflection(served):
    _, _, channel = served
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="potluck.v1.Ledger"),
                                                        timeout=10)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=10)
    names = {s.name for s in answer.list_services_response.service}
    assert "potluck.v1.Ledger" in names and "grpc.health.v1.Health" in names
