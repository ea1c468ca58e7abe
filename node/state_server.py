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
connection this peer keeps open to it (node/rejoin.py): a peer behind NAT cannot be dialled, but a
stream on a connection it dialled reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict

import torch
from hivemind.compression import serialize_torch_tensor
from hivemind.p2p import P2PContext
from hivemind.utils.streaming import split_for_streaming

from potluck.proto.state_pb2 import StateRequest

logger = logging.getLogger(__name__)

MAX_KEPT_STATES = 16
MAX_CONCURRENT_REQUESTS = 2
DIGEST_BYTES = 32


def state_handler_name(run_id: str) -> str:
    """The libp2p protocol a swarm's peers serve their kept states on."""
    return f"{run_id}_potluck_state_by_digest"


class StateServer:
    """Kept start states, served on the DHT's p2p daemon from a thread with an event loop of its own."""

    def __init__(self, dht, run_id: str, max_kept: int = MAX_KEPT_STATES):
        self.max_kept = max_kept
        self._kept: OrderedDict[bytes, list[torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="state-server")
        self._thread.start()
        self._p2p = self._run(self._start(dht, state_handler_name(run_id)), timeout=60.0)

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
