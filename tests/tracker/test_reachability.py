"""The tracker's dial-back and the node's use of it (node/reachability.py): a volunteer learns whether
other hosts can connect to it, and joins in client mode when they cannot. Across real NAT routers:
tests/e2e/test_nat.py and test_mixed_hosts.py."""

from __future__ import annotations

import socket

import grpc
import pytest

from potluck.node.reachability import find_reachability
from potluck.proto import tracker_pb2 as pb
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
