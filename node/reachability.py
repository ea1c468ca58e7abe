"""Can other hosts connect to this volunteer? Found out at start, so that one behind NAT joins
averaging the way it can without being told.

A hivemind peer that cannot be dialled must join in client mode: groupmates that try to send it its
part of the average fail, and so does the round for all of them. A volunteer cannot see a NAT router
or a firewall from inside, so it listens on the TCP port its DHT will use and asks the tracker (on
the lead's public host) to connect back to it (tracker/service/reachability.py). Reachable: it takes
part fully. Not: client mode, where it sends its gradients and receives the average, and the lead's
averaging helper reduces them (tracker/swarm/aux_peer.py).

Not checked where the volunteer has said: `--client-mode`, or `--announce-maddr` (a port forward it
set up). A tracker too old to answer, or too busy, leaves the peer as it would have been: dialable.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass

from potluck.errors import TrackerError

logger = logging.getLogger(__name__)

# The tracker runs a few checks at once, one per calling host (volunteers behind one NAT router share
# it); a busy one is asked again, a second apart, for longer than one check takes (3 s).
BUSY_RETRIES = 5


@dataclass(frozen=True)
class Reachability:
    client_mode: bool
    host_maddrs: tuple[str, ...]  # with a fixed port: the one that was checked
    summary: str  # one line for the volunteer


def find_reachability(client, host_maddrs: tuple[str, ...], announce_maddrs: tuple[str, ...],
                      client_mode: bool) -> Reachability:
    if client_mode:
        return Reachability(True, host_maddrs, "client mode (--client-mode): averaging through the swarm's "
                                               "public peers")
    if announce_maddrs:
        return Reachability(False, host_maddrs, f"announcing {', '.join(announce_maddrs)} (not checked)")
    if (listen := _first_tcp4(host_maddrs)) is None:
        return Reachability(False, host_maddrs, "listening on no IPv4 TCP address (not checked)")
    host, fixed = listen
    with socket.create_server((host, fixed), backlog=8) as listener:
        port = listener.getsockname()[1]
        answer = _ask(client, port)
    if answer is None:
        return Reachability(False, host_maddrs, "the tracker cannot check whether other hosts reach this one; "
                                                "joining as reachable (--client-mode if behind NAT)")
    maddrs = host_maddrs if fixed else (f"/ip4/{host}/tcp/{port}", *host_maddrs[1:])
    if answer.reachable:
        return Reachability(False, maddrs, f"reachable at {answer.address}: averaging with other volunteers directly")
    return Reachability(True, maddrs, (
        f"other hosts cannot connect to {answer.address} ({answer.reason}): behind NAT or a firewall, so "
        f"averaging in client mode through the lead's helper; to take part fully, forward TCP port {port} "
        f"here and join with --host-maddr /ip4/0.0.0.0/tcp/{port} --announce-maddr /ip4/<public ip>/tcp/{port}"))


def _ask(client, port: int):
    for attempt in range(BUSY_RETRIES):
        try:
            return client.check_reachability(port)
        except TrackerError as e:
            if e.code != "RESOURCE_EXHAUSTED" or attempt == BUSY_RETRIES - 1:
                logger.warning("reachability check: %s", e)
                return None
            time.sleep(1.0)
    return None


def _first_tcp4(maddrs: tuple[str, ...]) -> tuple[str, int] | None:
    """Host and port (0: any) of the first multiaddr, if it is IPv4 TCP (`/ip4/0.0.0.0/tcp/31400`)."""
    parts = maddrs[0].strip("/").split("/") if maddrs else []
    if len(parts) == 4 and parts[0] == "ip4" and parts[2] == "tcp" and parts[3].isdigit():
        return parts[1], int(parts[3])
    return None
