"""Stay in the swarm across a dropped link, and keep the connection the verifier reaches us through.

hivemind's DHT forgets a peer as soon as a request to it goes unanswered, and learns peers again only
from requests. A volunteer behind NAT receives none (nobody can dial it), so once its link has been
down for a few requests its routing table is empty and stays so: it trains and reports, but alone
(measured: a link cut for 30 s, then 5 of 5 later rounds "no other peers were training"). And the
verifier reaches a NAT'd volunteer's kept states over the connection the volunteer opened to the
lead's bootstrap peer (tracker/verifier/state_fetcher.py), which must not stay closed either.

So every REJOIN_INTERVAL the peer pings the swarm's bootstrap peers, which redials a dropped
connection and puts them back in its routing table; if it had lost every peer, it then looks up its
neighbours as it did at start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading

from hivemind.p2p import PeerID
from hivemind.utils.multiaddr import Multiaddr

logger = logging.getLogger(__name__)

REJOIN_INTERVAL = 10.0
PING_TIMEOUT = 5.0


class Rejoiner:
    """A thread that keeps `dht` connected to the peers of `initial_peers` (multiaddrs ending in /p2p/<id>)."""

    def __init__(self, dht, initial_peers):
        self.dht = dht
        self.peers = [PeerID.from_base58(Multiaddr(maddr)["p2p"]) for maddr in initial_peers]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="rejoin")
        if self.peers:
            self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(REJOIN_INTERVAL + PING_TIMEOUT)

    def _run(self) -> None:
        while not self.stopping.wait(REJOIN_INTERVAL):
            try:
                if self.dht.run_coroutine(functools.partial(_rejoin, peers=self.peers)):
                    logger.info("back in the swarm: the DHT had lost every peer, and found them again")
            except Exception as e:  # the DHT is shutting down
                logger.debug("rejoin: %s", e)


async def _rejoin(_dht, node, peers: list[PeerID]) -> bool:
    """Ping `peers`; True if the routing table was empty and is filled again."""
    alone = not node.protocol.routing_table.uid_to_peer_id
    answers = await asyncio.gather(*(asyncio.wait_for(node.protocol.call_ping(peer), PING_TIMEOUT) for peer in peers),
                                   return_exceptions=True)
    if alone and any(answer is not None and not isinstance(answer, BaseException) for answer in answers):
        await asyncio.wait_for(node.find_nearest_nodes([node.node_id]), PING_TIMEOUT * 2)
        return True
    return False
