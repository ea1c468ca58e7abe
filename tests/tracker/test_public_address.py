"""The address a lead's swarm advertises to other hosts (potluck/address.py, `swarm start`): never a
wildcard or, for a wildcard --listen, a loopback address; a clear error where it cannot tell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import netkit
import pytest

from potluck.address import advertised_host, check_maddr, default_route_address, tcp_maddr
from potluck.errors import ConfigError

pytestmark = pytest.mark.timeout(120)
POTLUCK = str(Path(sys.executable).parent / "potluck")


def test_a_wildcard_listen_advertises_the_default_routes_address():
    found = default_route_address()
    assert found is not None and not found.startswith("127.")  # this machine has a default route
    assert advertised_host("0.0.0.0", None) == found
    assert advertised_host("127.0.0.1", None) == "127.0.0.1"  # a local swarm stays local
    assert advertised_host("0.0.0.0", "lead.example.org") == "lead.example.org"


def test_bad_public_hosts_and_multiaddrs_are_refused_by_name():
    with pytest.raises(ConfigError, match="--public-host: must be an address other hosts can reach"):
        advertised_host("0.0.0.0", "0.0.0.0")
    with pytest.raises(ConfigError, match="--public-host: must be HOST:PORT"):
        advertised_host("0.0.0.0", "no spaces please")
    with pytest.raises(ConfigError, match="--announce-maddr: not a multiaddr"):
        check_maddr("203.0.113.7:31337")
    with pytest.raises(ConfigError, match="--announce-maddr: must name a fixed TCP port"):
        check_maddr("/ip4/203.0.113.7/tcp/0")
    assert check_maddr("/ip4/203.0.113.7/tcp/31337") == "/ip4/203.0.113.7/tcp/31337"
    assert tcp_maddr("10.0.0.1", 5) == "/ip4/10.0.0.1/tcp/5" and tcp_maddr("lead.example.org", 5) == \
        "/dns/lead.example.org/tcp/5"


@pytest.fixture
def routeless(tmp_path):
    """A host (network namespace) with nothing but loopback: no address another host could reach."""
    if (why := netkit.unavailable()) is not None:
        pytest.skip(why)
    net = netkit.Network(f"pa{os.getpid() % 100000}")
    try:
        yield net, net._namespace("alone")
    finally:
        net.close()


def test_a_host_with_no_route_says_to_give_public_host(routeless, tmp_path):
    _, namespace = routeless
    env = {**os.environ, "POTLUCK_HOME": str(tmp_path)}
    subprocess.run([POTLUCK, "identity", "create"], env=env, check=True, capture_output=True, timeout=60)
    subprocess.run([POTLUCK, "swarm", "init", "alone", "-o", str(tmp_path / "s.toml")], env=env, check=True,
                   capture_output=True, timeout=60)
    found = subprocess.run(["ip", "netns", "exec", namespace, POTLUCK, "swarm", "start", str(tmp_path / "s.toml"),
                            "--state-dir", str(tmp_path / "swarm"), "--listen", "0.0.0.0:50051"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert found.returncode == 1, found.stderr
    assert found.stderr.strip().splitlines() == [
        "error: --listen 0.0.0.0: cannot tell which address other hosts reach this one at (it has no default "
        "route); give --public-host HOST"], found.stderr
