"""Download from one named peer the model state with a given digest, within a time and a size budget.

The peer serves its kept start states on `state_handler_name(run_id)` (node/state_server.py). The
answer is read here frame by frame rather than through hivemind's `iterate_protobuf_handler`, whose
reader allocates whatever length a frame header claims: a hostile peer could make one frame 2^63
bytes. Here every frame's length is checked against what is left of the budget before it is read,
each tensor must have the dtype and shape of the parameter it stands for, and the whole download
must finish within its timeout.

Threat it meets: a volunteer behind NAT cannot be dialled, so a verifier that dialled each peer would
fail every such volunteer's drawn reports, and strike and ban honest people for where they live
(measured: three NAT'd volunteers, every check "all dials failed"). So downloads go through the
daemon of the lead's bootstrap peer where there is one (`daemon`): every volunteer dialled it, and
keeps that connection open (node/state_server.py), and a stream opened on it reaches the volunteer
whichever side dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future

import torch
from hivemind.compression import deserialize_torch_tensor
from hivemind.p2p import P2P, PeerID
from hivemind.proto import runtime_pb2
from hivemind.proto.p2pd_pb2 import RPCError
from hivemind.utils.multiaddr import Multiaddr
from hivemind.utils.streaming import combine_from_streaming

from potluck.node.state_server import state_handler_name
from potluck.proto.state_pb2 import StateRequest

CONNECT_TIMEOUT = 30.0  # seconds to attach to, or let go of, the DHT's p2p daemon
FRAME_OVERHEAD = 4096  # bytes a frame may carry besides tensor data (its dtype, shape, chunk counters)


class StateUnavailable(Exception):
    """The peer did not serve the state: unreachable, refused, too slow, too large, or not the parameters."""


class StateFetcher:
    """Downloads on an event loop of its own (a thread), so several may be under way; it shares the DHT's
    p2p daemon, or the one `daemon` names. `start` returns a future; `fetch` waits for one."""

    def __init__(self, dht, run_id: str, daemon: str | None = None):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="state-fetcher")
        self.thread.start()
        attach = dht.replicate_p2p() if daemon is None else P2P.replicate(Multiaddr(daemon))
        self.p2p = asyncio.run_coroutine_threadsafe(attach, self.loop).result(CONNECT_TIMEOUT)
        self.name = state_handler_name(run_id)

    def start(self, peer_id: str, digest: bytes, like: list[torch.Tensor], timeout: float) -> Future:
        """A future of the tensors of the state `peer_id` keeps under `digest`, shaped and typed like `like`.

        Its exception is StateUnavailable (with the reason) for anything else. The caller checks the digest."""
        return asyncio.run_coroutine_threadsafe(self._fetch(peer_id, digest, like, timeout), self.loop)

    def fetch(self, peer_id: str, digest: bytes, like: list[torch.Tensor], timeout: float) -> list[torch.Tensor]:
        """`start`, waited for."""
        return self.start(peer_id, digest, like, timeout).result()

    async def _fetch(self, peer_id: str, digest: bytes, like: list[torch.Tensor], timeout: float):
        try:
            peer = PeerID.from_base58(peer_id)
        except Exception as e:
            raise StateUnavailable(f"{peer_id!r} is not a PeerID") from e
        budget = sum(t.numel() * t.element_size() for t in like) + FRAME_OVERHEAD * (len(like) + 16)
        try:
            return await asyncio.wait_for(self._download(peer, digest, like, budget), timeout)
        except StateUnavailable:
            raise
        except TimeoutError as e:
            raise StateUnavailable(f"no whole state within {timeout:g}s") from e
        except Exception as e:  # unreachable, a dropped stream, garbage frames
            raise StateUnavailable(f"{type(e).__name__}: {e}") from e

    async def _download(self, peer: PeerID, digest: bytes, like: list[torch.Tensor], budget: int):
        _, reader, writer = await self.p2p.call_binary_stream_handler(peer, self.name)
        with contextlib.closing(writer):
            await P2P.send_protobuf(StateRequest(digest=digest), writer)
            await P2P.send_protobuf(P2P.END_OF_STREAM, writer)
            tensors, parts, left = [], [], budget
            while True:
                try:
                    marker = await reader.readexactly(1)
                except asyncio.IncompleteReadError:
                    break  # the peer closed the stream: the answer is complete
                length = int.from_bytes(await reader.readexactly(P2P.HEADER_LEN), P2P.BYTEORDER)
                if length > left:
                    raise StateUnavailable(f"the answer exceeds {budget} bytes, the size of the model's parameters")
                left -= length
                frame = await reader.readexactly(length)
                if marker == P2P.ERROR_MARKER:
                    raise StateUnavailable(f"the peer refused: {RPCError.FromString(frame).message}")
                if marker != P2P.MESSAGE_MARKER:
                    raise StateUnavailable("the answer is not a protobuf stream")
                part = runtime_pb2.Tensor.FromString(frame)
                if part.dtype and parts:  # a tensor's first part: the one before is whole
                    tensors.append(_as_parameter(parts, like, len(tensors)))
                    parts = []
                parts.append(part)
            if parts:
                tensors.append(_as_parameter(parts, like, len(tensors)))
        if len(tensors) != len(like):
            raise StateUnavailable(f"the peer sent {len(tensors)} tensors, not the model's {len(like)} parameters"
                                   + (" (it keeps no state with that digest)" if not tensors else ""))
        return tensors

    def close(self) -> None:
        """Cancel the downloads under way, let go of the daemon, end the loop's thread."""
        async def finish():
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()
            with contextlib.suppress(Exception):  # the DHT (and its daemon) may be gone already
                await self.p2p.shutdown()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(finish(), self.loop).result(CONNECT_TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(CONNECT_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


def _as_parameter(parts: list, like: list[torch.Tensor], position: int) -> torch.Tensor:
    if position >= len(like):
        raise StateUnavailable(f"the peer sent more tensors than the model's {len(like)} parameters")
    expected = like[position]
    tensor = deserialize_torch_tensor(combine_from_streaming(parts))
    if tensor.dtype != expected.dtype or tensor.shape != expected.shape:
        raise StateUnavailable(f"parameter {position} came as {tensor.dtype} {tuple(tensor.shape)}, not "
                               f"{expected.dtype} {tuple(expected.shape)}")
    return tensor
