"""The tracker's dial-back: tell a volunteer whether other hosts can open connections to it.

hivemind peers that cannot be dialled must join averaging in client mode, or every round they are in
fails when groupmates try to send them their part. A volunteer cannot see from inside whether a NAT
router stands in its way, so it asks the tracker, which is on the lead's public host, to connect back
to it (node/reachability.py). The address dialled is the one the caller's connection comes from,
never one the caller names: the check cannot be turned on a third host. Each dial is bounded by
DIAL_TIMEOUT, at most MAX_DIALS run at once, and one per calling host (more are refused with
RESOURCE_EXHAUSTED): a host that keeps asking to be dialled at a port that never answers holds one
slot, not all of them, so it cannot make honest volunteers behind NAT go unchecked (unchecked, a
node joins as reachable, and its rounds fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

DIAL_TIMEOUT = 3.0
MAX_DIALS = 8


class DialBack:
    def __init__(self) -> None:
        self.dialling: set[str] = set()  # hosts with a dial under way

    def busy(self, host: str) -> bool:
        return host in self.dialling or len(self.dialling) >= MAX_DIALS

    async def dial(self, host: str, port: int) -> str | None:
        """None when `host`:`port` accepted a TCP connection within DIAL_TIMEOUT; else why not. Callers
        check `busy(host)` first; the event loop runs nothing else between the two."""
        self.dialling.add(host)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), DIAL_TIMEOUT)
        except TimeoutError:
            return f"no answer within {DIAL_TIMEOUT:g}s"
        except OSError as e:
            return os.strerror(e.errno) if e.errno else str(e) or type(e).__name__
        finally:
            self.dialling.discard(host)
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), DIAL_TIMEOUT)
        return None


def caller_host(peer: str) -> str | None:
    """The host of a gRPC peer string ("ipv4:10.0.0.2:5123", "ipv6:[::1]:5123"); None if not over TCP."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or ":" not in rest:
        return None
    host = rest.rsplit(":", 1)[0]
    return host.strip("[]") if kind == "ipv6" else host
