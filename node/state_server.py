"""Keep the model states this peer's recent windows started from, and serve them by digest.

A report names the state its window started from (`state_digest`). The verifier recomputes a drawn
report on that state, so it must be able to get it: it asks the peer the report came from, by digest,
over the peer's libp2p connection (the request is `StateRequest`; the answer hivemind's serialized
tensor chunks, the parameters in the model's order). A peer that cannot serve the state a drawn report
names fails that check (tracker/verifier/verifier.py): a report nobody can check earns nothing.

So an honest peer keeps the start state of each of its last `MAX_KEPT_STATES` windows, in memory (one
copy of the parameters each, on the CPU) for as long as a report of it may still be drawn: reports are
sent as each window closes and checked within seconds, so the last few windows are what is asked for.
What this cannot cover, and costs an honest peer a check if drawn: a report delivered after its peer
restarted (kept states do not survive a restart), or after more than `MAX_KEPT_STATES` later windows
(a tracker outage that long).

Anyone can ask: each request costs at most one state's serialization, and at most
`MAX_CONCURRENT_REQUESTS` run at once (the rest wait their turn).

The verifier asks through the lead's bootstrap peer (tracker/verifier/state_fetcher.py), over the
connection this peer keeps open to it (`keep_connected`, redialled every KEEPALIVE_INTERVAL): a peer
behind NAT cannot be dialled, but a stream on a connection it dialled reaches it. After its link drops,
the next redial restores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

import torch
from hivemind.compression import serialize_torch_tensor
from hivemind.p2p import P2PContext, PeerID
from hivemind.utils.multiaddr import Multiaddr
from hivemind.utils.streaming import split_for_streaming

from potluck.proto.state_pb2 import StateRequest

logger = logging.getLogger(__name__)

MAX_KEPT_STATES = 16
MAX_CONCURRENT_REQUESTS = 2
DIGEST_BYTES = 32
KEEPALIVE_INTERVAL = 10.0  # seconds between redials of the peers to stay connected to


def state_handler_name(run_id: str) -> str:
    """The libp2p protocol a swarm's peers serve their kept states on."""
    return f"{run_id}_potluck_state_by_digest"


class StateServer:
    """Kept start states, served on the DHT's p2p daemon from a thread with an event loop of its own."""

    def __init__(self, dht, run_id: str, max_kept: int = MAX_KEPT_STATES, keep_connected: Sequence[str] = ()):
        """`keep_connected`: multiaddrs, each ending in /p2p/<PeerID> (the swarm's bootstrap peers)."""
        self.max_kept = max_kept
        self._kept: OrderedDict[bytes, list[torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="state-server")
        self._thread.start()
        self._p2p = self._run(self._start(dht, state_handler_name(run_id)), timeout=60.0)
        peers = [_peer_and_address(maddr) for maddr in keep_connected]
        self._keepalive = asyncio.run_coroutine_threadsafe(self._keep_connected(peers), self._loop)

    def keep(self, digest: bytes, model: torch.nn.Module) -> None:
        """Keep the model's parameters as the state with `digest` (the oldest kept is dropped beyond the cap)."""
        with torch.no_grad():
            tensors = [p.detach().to("cpu", copy=True) for p in model.parameters()]
        with self._lock:
            self._kept[digest] = tensors
            self._kept.move_to_end(digest)
            while len(self._kept) > self.max_kept:
                self._kept.popitem(last=False)

    def kept(self) -> list[bytes]:
        with self._lock:
            return list(self._kept)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._keepalive.cancel)
        with contextlib.suppress(Exception):  # the DHT (and its daemon) may be gone already
            self._run(self._p2p.shutdown(), timeout=10.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10.0)
        self._loop.close()

    def _run(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _start(self, dht, name: str):
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        p2p = await dht.replicate_p2p()
        await p2p.add_protobuf_handler(name, self._serve, StateRequest, stream_output=True)
        return p2p

    async def _keep_connected(self, peers: list[tuple[PeerID, Multiaddr]]) -> None:
        while True:
            for peer, address in peers:
                try:  # a no-op while connected; hivemind's P2P has no public call for it
                    await asyncio.wait_for(self._p2p._client.connect(peer, [address]), KEEPALIVE_INTERVAL)
                except Exception as e:  # the link is down, or the peer is: try again next round
                    logger.debug("cannot reach %s: %s", address, e)
            await asyncio.sleep(KEEPALIVE_INTERVAL)

    async def _serve(self, request: StateRequest, context: P2PContext):
        # An unknown digest gets an empty answer (hivemind would log a traceback for every refusal it sent).
        with self._lock:
            tensors = self._kept.get(request.digest) if len(request.digest) == DIGEST_BYTES else None
        if tensors is None:
            logger.debug("asked by %s for a state not kept: %s", context.remote_id, request.digest.hex()[:16])
            return
        logger.debug("serving state %s… to %s", request.digest.hex()[:16], context.remote_id)
        async with self._slots:
            for tensor in tensors:
                for part in split_for_streaming(serialize_torch_tensor(tensor)):
                    yield part


def _peer_and_address(maddr: str) -> tuple[PeerID, Multiaddr]:
    address = Multiaddr(maddr)
    peer = address.value_for_protocol("p2p")
    return PeerID.from_base58(peer), address.decapsulate(Multiaddr(f"/p2p/{peer}"))
