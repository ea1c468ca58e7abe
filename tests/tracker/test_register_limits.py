"""How fast new (account, peer) pairs may register (tracker/service/register_limits.py), against a real
tracker listening on IPv4 and IPv6 loopback, so that two callers come from two networks.

Threat (issue 14): Register needs no account and each new pair is a durable entry. Unlimited, one
client grew the log without end; limited only tracker-wide, one host making accounts spent the whole
budget and locked every honest newcomer out.
"""

import time

import grpc
import pytest
from grpckit import tracker_channel
from swarmkit import Volunteer
from trackerkit import RunningTracker, registered

from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import TrackerStub
from potluck.tracker.service import register_limits
from potluck.tracker.service.register_limits import Refused, RegisterLimits, source_of

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def tracker(tmp_path):
    running = RunningTracker(tmp_path, host="[::]")  # dual-stack: 127.0.0.1 and [::1] are two callers
    yield running
    running.stop()


def register(stub, tracker, volunteer):
    return stub.Register(pb.RegisterRequest(binding=volunteer.binding(tracker.manifest)), timeout=10)


def refusal(call) -> str:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, raised.value
    return raised.value.details()


def test_one_account_binds_a_few_peers_then_one_a_minute(tracker, tmp_path):
    alice = registered(tracker, tmp_path)
    for _ in range(register_limits.ACCOUNT_REGISTER_BURST - 1):
        register(tracker.stub, tracker, Volunteer(alice.account, Volunteer.create(tmp_path).peer))
    another_peer = Volunteer(alice.account, Volunteer.create(tmp_path).peer)
    reason = refusal(lambda: register(tracker.stub, tracker, another_peer))
    assert f"account {alice.account.account_id[:12]} registers new peers too fast" in reason
    # The same pair again is still answered (nothing new to log), and other accounts still join.
    assert register(tracker.stub, tracker, alice).index >= 0
    registered(tracker, tmp_path)


def test_one_host_making_accounts_does_not_lock_out_a_newcomer_from_elsewhere(tracker, tmp_path):
    started, taken = time.monotonic(), 0
    while True:  # the attacker: a new account and peer each time, all from 127.0.0.1
        try:
            register(tracker.stub, tracker, Volunteer.create(tmp_path))
            taken += 1
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
            assert "127.0.0.1 registers new peers too fast" in error.details()
            break
        assert taken <= 2 * register_limits.SOURCE_REGISTER_BURST, "one host is not limited"
    refilled = (time.monotonic() - started) * register_limits.SOURCE_REGISTER_PER_SECOND
    print(f"\none host registered {taken} new accounts before it was refused ({refilled:.1f} refilled meanwhile)")
    assert register_limits.SOURCE_REGISTER_BURST <= taken <= register_limits.SOURCE_REGISTER_BURST + refilled + 1
    channel = tracker_channel(f"[::1]:{tracker.port}")
    try:  # the newcomer, from another network, joins at once
        newcomer = Volunteer.create(tmp_path)
        assert register(TrackerStub(channel), tracker, newcomer).index > 0
        # Tracker-wide, the budget still bounds everyone: nearly spent, it takes one more, then refuses.
        limits = tracker.tracker.service.new_pairs
        limits.overall.tokens, limits.overall.per_second = 1.0, 0.0
        register(TrackerStub(channel), tracker, Volunteer.create(tmp_path))
        reason = refusal(lambda: register(TrackerStub(channel), tracker, Volunteer.create(tmp_path)))
        assert "the tracker takes new registrations" in reason
    finally:
        channel.close()


def test_a_refusal_spends_nothing_and_idle_buckets_are_forgotten():
    limits = RegisterLimits(now=0.0)
    limits.overall.tokens = 0.0  # the tracker's budget spent: every new pair refused ...
    for i in range(register_limits.MAX_BUCKETS + 10):
        with pytest.raises(Refused):
            limits.take(f"account-{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", now=0.0)
    # ... and no account's or host's tokens spent on the refusals; full buckets are as good as new, so
    # the ones kept stay bounded whatever the number of callers.
    assert len(limits.accounts.by_key) <= register_limits.MAX_BUCKETS
    assert len(limits.sources.by_key) <= register_limits.MAX_BUCKETS
    assert all(b.tokens == b.burst for b in limits.accounts.by_key.values())


def test_callers_are_counted_by_network():
    assert source_of("203.0.113.7") == "203.0.113.7"
    assert source_of("::ffff:203.0.113.7") == "203.0.113.7"  # IPv4 on a dual-stack socket
    # One subscriber picks addresses from a whole /64: they count as one.
    assert source_of("2001:db8:1:2::5") == source_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::5") != source_of("2001:db8:1:2::5")
    assert source_of(None) == "local"
