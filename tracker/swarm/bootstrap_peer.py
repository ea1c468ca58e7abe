"""The swarm's first DHT peer: the address every volunteer joins through, so it must never change.

It runs in a process group of its own with an identity kept in the lead's state dir (a stable
PeerID) on a fixed port. Every volunteer dials it first and keeps a connection to it (node/state_server.py),
so the verifier downloads states through its daemon (`daemon`, the daemon's control socket on this host):
that reaches volunteers behind NAT, whom nobody can dial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from potluck.address import tcp_maddr
from potluck.errors import ConfigError
from potluck.group_process import GroupProcess

BOOTSTRAP_START_TIMEOUT = 60.0
BOOTSTRAP_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class BootstrapReady:
    maddrs: list[str]  # the peer's multiaddrs, ending in its PeerID
    daemon: str  # its p2p daemon's control multiaddr, for other processes on this host


@dataclass(frozen=True)
class BootstrapFailed:
    reason: str


def start_bootstrap_peer(state_dir: Path, host: str, port: int,
                         announce_maddrs: list[str] | None = None) -> tuple[GroupProcess, BootstrapReady]:
    """Start the bootstrap peer on `host`:`port`, announcing `announce_maddrs` (what other hosts dial; by
    default what its daemon sees); return its process and its addresses (each ending in its PeerID)."""
    from potluck.binding import load_or_create_peer_identity  # here: it imports hivemind, which takes seconds

    identity = load_or_create_peer_identity(state_dir / "bootstrap.key")
    peer = GroupProcess(_run_bootstrap_peer, str(identity.path), host, port, announce_maddrs,
                        name="potluck-bootstrap").start()
    event = peer.next_event(BOOTSTRAP_START_TIMEOUT)
    if not isinstance(event, BootstrapReady):
        peer.kill()
        why = event.reason if isinstance(event, BootstrapFailed) else f"no answer within {BOOTSTRAP_START_TIMEOUT:.0f}s"
        raise ConfigError(f"--dht-port {port}: cannot start the bootstrap DHT peer on {host} ({why})")
    return peer, event


def _run_bootstrap_peer(stop, events, identity_path: str, host: str, port: int,
                        announce_maddrs: list[str] | None) -> None:
    import hivemind

    try:
        dht = hivemind.DHT(start=True, host_maddrs=[tcp_maddr(host.strip("[]"), port)], identity_path=identity_path,
                           announce_maddrs=announce_maddrs or None)
    except Exception as e:  # hivemind reports a taken port as a generic daemon error
        events.put(BootstrapFailed(" ".join(str(e).split())[:300]))
        return
    daemon = dht.run_coroutine(_daemon_maddr)
    if announce_maddrs:
        events.put(BootstrapReady([f"{maddr}/p2p/{dht.peer_id.to_base58()}" for maddr in announce_maddrs], daemon))
    else:
        events.put(BootstrapReady([str(m) for m in dht.get_visible_maddrs()], daemon))
    while not stop.wait(1.0):
        pass
    dht.shutdown()


async def _daemon_maddr(_dht, node) -> str:
    return str(node.p2p.daemon_listen_maddr)
