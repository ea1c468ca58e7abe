"""The replay's checks on entries themselves, one lie at a time; threads or not, the findings are the same."""

import time

import pytest
from auditkit import ACCOUNTS, ORIGIN, build_log, inflated, stolen
from ledgerkit import grant, signed_report, vest

from potluck.audit.replay import Replay
from potluck.binding import load_or_create_peer_identity, make_binding
from potluck.entries import decode_entry, serialize_entry
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.proto.ledger_pb2 import BindingRecord, Forfeit, LedgerEntry

pytestmark = pytest.mark.timeout(60)


def replay(entries, num_threads=1) -> list[str]:
    r = Replay(ORIGIN, num_threads=num_threads)
    r.feed(entries)
    r.finish()
    return [p.message for p in r.problems]


def edited(data: bytes, change) -> bytes:
    entry = decode_entry(data)
    change(entry)
    return serialize_entry(entry)


def forged_signature(data: bytes) -> bytes:
    def change(entry):
        envelope = SignedEnvelope.FromString(entry.grant.report)
        envelope.signature = bytes(64 - 1) + b"\x01"
        entry.grant.report = envelope.SerializeToString(deterministic=True)
    return edited(data, change)


def test_an_honest_log_has_no_problems(log40):
    assert replay(log40) == []


@pytest.mark.parametrize(("lie", "expected"), [
    (lambda d: d + b"\x10\x05", "entry 9: expected canonically serialized entry bytes"),
    (lambda d: b"\xff\xff", "entry 9: expected a serialized LedgerEntry, got undecodable bytes"),
    (lambda d: edited(d, lambda e: setattr(e, "origin", "elsewhere")), "entry 9: expected origin"),
    (forged_signature, "entry 9: the granted report does not verify: signature by"),
    (lambda d: edited(d, lambda e: setattr(e.grant, "credits", "1")), "entry 9: expected credits 0.0000000079"),
    (lambda d: edited(d, lambda e: setattr(e.grant, "flops", 1)), "entry 9: expected flops 64 x 123456"),
    (lambda d: inflated(d), "entry 9: grants credit for 6400 samples, but the signed report claims only 64"),
    (lambda d: stolen(d, ACCOUNTS[1]), "entry 9: expected the report to be signed by the credited account"),
    (lambda d: serialize_entry(grant(ACCOUNTS[0], 99, report=signed_report(ACCOUNTS[0], 99, origin="other"))),
     "entry 9: the granted report does not verify: expected origin 'potluck.swarm/test/ledger', got 'other'"),
    (lambda d: serialize_entry(vest(ACCOUNTS[0], [0], 1)), "entry 9: vest names grant 0, which is not in"),
    # A claw-back may only take credit the account vested (a tracker emptying an honest account).
    (lambda d: serialize_entry(LedgerEntry(origin=ORIGIN, forfeit=Forfeit(
        account_id=ACCOUNTS[0].account_id, clawed_back_indices=[999], clawed_back_flops=1, reason="x"))),
     "entry 9: forfeit claws back grant 999, which is not vested by"),
])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_each_lie_is_named(log40, lie, expected, num_threads):
    entries = list(log40)
    entries[9] = lie(entries[9])
    problems = replay(entries, num_threads)
    assert any(p.startswith(expected) for p in problems), problems
    assert all(p.startswith("entry ") for p in problems)


def test_sequence_and_duplicates(log40):
    assert replay(log40[:12] + [log40[3]]) == ["entry 12: logs the same signed report as entry 3"]
    older = serialize_entry(grant(ACCOUNTS[0], 2))  # account 0 reported sequence 3 at entry 9
    assert replay(log40[:12] + [older])[0].startswith("entry 12: expected a report sequence above 3")


def test_bindings_are_checked(tmp_path):
    peer = load_or_create_peer_identity(tmp_path / "peer.key")
    binding = make_binding(ACCOUNTS[0], peer, ORIGIN)

    def record(account_id: str, data: bytes = binding) -> bytes:
        return serialize_entry(LedgerEntry(origin=ORIGIN, logged_at_ms=int(time.time() * 1000), binding=BindingRecord(
            binding=data, account_id=account_id, peer_id=peer.peer_id)))

    good = record(ACCOUNTS[0].account_id)
    assert replay([good]) == []
    assert replay([good, good]) == ["entry 1: logs the same signed binding as entry 0"]
    [claimed] = replay([record(ACCOUNTS[1].account_id)])
    assert claimed.startswith("entry 0: expected the record to name the binding's account")
    second = make_binding(ACCOUNTS[1], peer, ORIGIN)
    [taken] = replay([good, record(ACCOUNTS[1].account_id, second)])
    assert taken.startswith(f"entry 1: binds peer {peer.peer_id} to account")
    [forged] = replay([record(ACCOUNTS[0].account_id, binding[:-1] + bytes([binding[-1] ^ 1]))])
    assert forged.startswith("entry 0: the logged binding does not verify")


def test_threads_find_what_one_thread_finds():
    entries = build_log(3000)
    for i in (100, 1500, 2999):
        entries[i] = inflated(entries[i]) if decode_entry(entries[i]).HasField("grant") else entries[i]
    entries[2000] = entries[1000]
    assert replay(entries, 1) == replay(entries, 3) and len(replay(entries, 1)) == 4
