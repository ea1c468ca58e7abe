"""The tracker's dial-back and the node's use of it (node/reachability.py): a volunteer learns whether
other hosts can connect to it, and joins in client mode when they cannot. Across real NAT routers:
tests/e2e/test_nat.py and test_mixed_hosts.py."""

from __future__ import annotations

import socket
import time

import grpc
import pytest

from potluck.node.reachability import find_reachability
from potluck.proto import tracker_pb2 as pb
from potluck.tracker.service.reachability import MAX_DIALS, DialBack
from potluck.tracker_client import TrackerClient

pytestmark = pytest.mark.timeout(60)


def test_a_port_this_host_listens_on_is_reachable_and_kept_for_the_dht(tracker):
    with TrackerClient(tracker.address, rpc_timeout=10) as client:
        found = find_reachability(client, ("/ip4/127.0.0.1/tcp/0",), (), client_mode=False)
    assert not found.client_mode, found
    host, port = found.host_maddrs[0].split("/")[2], int(found.host_maddrs[0].split("/")[4])
    assert host == "127.0.0.1" and port > 0, found  # the host asked for, with the port that was checked
    assert f"reachable at 127.0.0.1:{port}" in found.summary


def test_a_port_nobody_listens_on_is_not_reachable_and_says_why(tracker):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        closed = taken.getsockname()[1]
    answer = tracker.stub.CheckReachability(pb.ReachabilityRequest(port=closed), timeout=10)
    assert not answer.reachable and answer.address == f"127.0.0.1:{closed}"
    assert "refused" in answer.reason.lower(), answer.reason


@pytest.mark.parametrize("port", [0, 65536, 2**32 - 1])
def test_a_bad_port_is_refused_by_name(tracker, port):
    with pytest.raises(grpc.RpcError) as caught:
        tracker.stub.CheckReachability(pb.ReachabilityRequest(port=port), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == f"port: must be from 1 to 65535 (got {port})"


def test_what_the_volunteer_said_is_not_checked():
    # No tracker is asked (there is none): --client-mode and a port forward are the volunteer's word.
    forced = find_reachability(None, ("/ip4/0.0.0.0/tcp/0",), (), client_mode=True)
    assert forced.client_mode and "--client-mode" in forced.summary
    forwarded = find_reachability(None, ("/ip4/0.0.0.0/tcp/31400",), ("/ip4/203.0.113.7/tcp/31400",),
                                  client_mode=False)
    assert not forwarded.client_mode and forwarded.host_maddrs == ("/ip4/0.0.0.0/tcp/31400",)


def test_a_host_that_asks_for_dials_that_never_answer_holds_one_slot_not_all(tracker):
    # The attack: keep every dial-back slot waiting on ports of one's own that never answer, so honest
    # volunteers behind NAT go unchecked (and join as reachable, breaking their rounds). A listener
    # whose backlog is full drops new connections: the tracker's dial to it waits out DIAL_TIMEOUT.
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            waiting = tracker.stub.CheckReachability.future(pb.ReachabilityRequest(port=port), timeout=10)
            dialling = tracker.tracker.service.dial_back.dialling  # the running tracker's own, read in place
            deadline = time.monotonic() + 5
            while "127.0.0.1" not in dialling:  # until the first dial is under way
                assert time.monotonic() < deadline and not waiting.done(), "the first dial never started"
                time.sleep(0.01)
            with pytest.raises(grpc.RpcError) as refused:
                tracker.stub.CheckReachability(pb.ReachabilityRequest(port=port), timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert not waiting.result().reachable and "no answer within 3s" in waiting.result().reason
        finally:
            for filler in fillers:
                filler.close()
    # Once it is done, the same host is served again; other hosts never waited on it.
    assert not tracker.stub.CheckReachability(pb.ReachabilityRequest(port=port), timeout=10).reachable
    dial_back = DialBack()
    dial_back.dialling.add("10.0.0.9")
    assert dial_back.busy("10.0.0.9") and not dial_back.busy("10.0.0.10")
    dial_back.dialling.update(f"10.0.1.{n}" for n in range(MAX_DIALS))
    assert dial_back.busy("10.0.0.10")  # and all of them at once are bounded
