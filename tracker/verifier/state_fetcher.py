"""Download the model parameters one named peer holds, over hivemind's state-sharing RPC.

hivemind's `load_state_from_peers` asks whichever peer is furthest on (ties broken at random). A
verifier that lacks the state a given peer announced must ask that peer. The request is the one
hivemind's own averagers serve (`TrainingStateAverager.rpc_download_state`, hivemind 1.1.12): the
stream carries the parameters first, in the optimizer's order, then the optimizer's statistics,
which we do not read.
"""

from __future__ import annotations

import asyncio
import contextlib

import torch
from hivemind.compression import deserialize_torch_tensor
from hivemind.optim.state_averager import TrainingStateAverager
from hivemind.p2p import PeerID
from hivemind.proto import averaging_pb2
from hivemind.utils.streaming import combine_from_streaming


class StateFetcher:
    """Blocking downloads for a process's main thread; it shares the DHT's p2p daemon."""

    def __init__(self, dht, run_id: str):
        self.loop = asyncio.new_event_loop()
        self.p2p = self.loop.run_until_complete(dht.replicate_p2p())
        self.namespace = f"{run_id}_state_averager"  # as hivemind.Optimizer names its state averager

    def parameters(self, peer_id: str, count: int, timeout: float) -> list[torch.Tensor]:
        """The first `count` tensors of the peer's state (its parameters), within `timeout` seconds."""
        return self.loop.run_until_complete(asyncio.wait_for(self._download(PeerID.from_base58(peer_id), count),
                                                             timeout))

    async def _download(self, peer: PeerID, count: int) -> list[torch.Tensor]:
        stub = TrainingStateAverager.get_stub(self.p2p, peer, namespace=self.namespace)
        tensors, parts = [], []
        async with contextlib.aclosing(await stub.rpc_download_state(averaging_pb2.DownloadRequest())) as stream:
            async for message in stream:
                if message.tensor_part.dtype and parts:  # a tensor's first part: the one before is whole
                    tensors.append(deserialize_torch_tensor(combine_from_streaming(parts)))
                    parts = []
                    if len(tensors) == count:
                        return tensors
                parts.append(message.tensor_part)
        if parts:
            tensors.append(deserialize_torch_tensor(combine_from_streaming(parts)))
        if len(tensors) < count:
            raise ValueError(f"peer {peer} sent {len(tensors)} tensors, not the {count} parameters expected")
        return tensors[:count]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the DHT (and its daemon) may be gone already
            self.loop.run_until_complete(self.p2p.shutdown())
        self.loop.close()
