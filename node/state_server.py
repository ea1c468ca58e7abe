"""Keep the model states this peer's recent windows started from, and serve them by digest.

A report names the state its window started from (`state_digest`). The verifier recomputes a drawn
report on that state, so it must be able to get it: it asks the peer the report came from, by digest,
over the peer's libp2p connection (the request is `StateRequest`; the answer hivemind's serialized
tensor chunks, the parameters in the model's order). A peer that cannot serve the state a drawn report
names fails that check (tracker/verifier/verifier.py): a report nobody can check earns nothing.

So an honest peer keeps the start state of each of its last `MAX_KEPT_STATES` windows, in memory (one
copy of the parameters each, on the CPU) for as long as a report of it may still be drawn: reports are
sent as each window closes and checked within seconds, so the last few windows are what is asked for.
Each is also written to the node's state directory (`kept-states/<digest>.safetensors`, the last
`MAX_KEPT_STATES`), so that a worker restarted after a crash still serves the states its earlier
reports name: measured in CI before, a volunteer whose worker was SIGKILLed had a report checked after
the restart, could not serve its state, and was struck and lost its escrow. A file is served only if
its parameters still have the digest it is named by (a damaged one is deleted). What this cannot
cover, and costs an honest peer a check if drawn: a report checked after more than `MAX_KEPT_STATES`
later windows (a tracker outage that long), or after its state directory was lost.

Anyone can ask: each request costs at most one state's serialization, and at most
`MAX_CONCURRENT_REQUESTS` run at once (the rest wait their turn).

The verifier asks through the lead's bootstrap peer (tracker/verifier/state_fetcher.py), over the
connection this peer keeps open to it (node/rejoin.py): a peer behind NAT cannot be dialled, but a
stream on a connection it dialled reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from hivemind.compression import serialize_torch_tensor
from hivemind.p2p import P2PContext
from hivemind.utils.streaming import split_for_streaming
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from potluck.node.sketch import named_state_digest
from potluck.proto.state_pb2 import StateRequest

logger = logging.getLogger(__name__)

MAX_KEPT_STATES = 16
MAX_CONCURRENT_REQUESTS = 2
DIGEST_BYTES = 32


def state_handler_name(run_id: str) -> str:
    """The libp2p protocol a swarm's peers serve their kept states on."""
    return f"{run_id}_potluck_state_by_digest"


class StateServer:
    """Kept start states, served on the DHT's p2p daemon from a thread with an event loop of its own.

    With a `directory`, each kept state is written there too, and the ones found there at start (a
    restarted worker's) are served from disk when asked for.
    """

    def __init__(self, dht, run_id: str, max_kept: int = MAX_KEPT_STATES, directory: Path | None = None):
        self.max_kept, self.directory = max_kept, directory
        # digest -> the parameters in the model's order; None: only on disk (kept before a restart)
        self._kept: OrderedDict[bytes, list[torch.Tensor] | None] = OrderedDict()
        self._lock = threading.Lock()
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                for partial in directory.glob("*.partial"):  # a write a crash cut short
                    partial.unlink(missing_ok=True)
                self._kept.update((digest, None) for digest in _files_oldest_first(directory))
            except OSError as e:  # the worker still trains and serves what it keeps in memory
                self._disk_failed(e)
            self._drop_beyond_cap()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="state-server")
        self._thread.start()
        self._p2p = self._run(self._start(dht, state_handler_name(run_id)), timeout=60.0)

    def keep(self, digest: bytes, model: torch.nn.Module) -> None:
        """Keep the model's parameters as the state with `digest` (the oldest kept is dropped beyond the cap)."""
        with torch.no_grad():
            named = [(name, p.detach().to("cpu", copy=True)) for name, p in model.named_parameters()]
        if self.directory is not None:  # before it is served: a report naming it may be sent at once
            try:
                _write_state(self.directory, digest, named)
            except (OSError, SafetensorError) as e:  # a full disk must not stop training: kept in memory only
                self._disk_failed(e)
        with self._lock:
            self._kept[digest] = [tensor for _, tensor in named]
            self._kept.move_to_end(digest)
            self._drop_beyond_cap()

    def _disk_failed(self, error: Exception) -> None:
        logger.warning("kept states stay in memory only from now on (lost if this worker restarts): %s", error)
        with self._lock:
            self.directory = None
            for digest in [digest for digest, tensors in self._kept.items() if tensors is None]:
                del self._kept[digest]  # on disk only, and the disk is not ours any more

    def _drop_beyond_cap(self) -> None:
        while len(self._kept) > self.max_kept:
            digest, _ = self._kept.popitem(last=False)
            if self.directory is not None:
                with contextlib.suppress(OSError):
                    _path(self.directory, digest).unlink(missing_ok=True)

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
            known = len(request.digest) == DIGEST_BYTES and request.digest in self._kept
            tensors = self._kept.get(request.digest) if known else None
            directory = self.directory
        if known and tensors is None and directory is not None:  # kept before this worker started: read it back
            async with self._slots:
                tensors = await asyncio.to_thread(_read_state, directory, request.digest)
            with self._lock:  # read and checked once: kept in memory from now on, or (damaged) forgotten
                if request.digest in self._kept and self._kept[request.digest] is None:
                    if tensors is None:
                        del self._kept[request.digest]
                    else:
                        self._kept[request.digest] = tensors
        if tensors is None:
            logger.debug("asked by %s for a state not kept: %s", context.remote_id, request.digest.hex()[:16])
            return
        logger.debug("serving state %s… to %s", request.digest.hex()[:16], context.remote_id)
        async with self._slots:
            for tensor in tensors:
                for part in split_for_streaming(serialize_torch_tensor(tensor)):
                    yield part


def _path(directory: Path, digest: bytes) -> Path:
    return directory / f"{digest.hex()}.safetensors"


def _files_oldest_first(directory: Path) -> list[bytes]:
    found = []
    for path in directory.glob("*.safetensors"):
        try:
            digest = bytes.fromhex(path.stem)
        except ValueError:
            continue
        if len(digest) == DIGEST_BYTES:
            found.append((path.stat().st_mtime_ns, digest))
    return [digest for _, digest in sorted(found)]


def _write_state(directory: Path, digest: bytes, named: list[tuple[str, torch.Tensor]]) -> None:
    """Write atomically (a temporary file renamed): a crash mid-write leaves no file under the digest."""
    path = _path(directory, digest)
    temporary = path.with_suffix(".partial")
    save_file({name: tensor.contiguous() for name, tensor in named}, str(temporary),
              metadata={"order": json.dumps([name for name, _ in named])})
    os.replace(temporary, path)


def _read_state(directory: Path, digest: bytes) -> list[torch.Tensor] | None:
    """The parameters of a kept file, in the model's order, if they still have `digest`; else delete it."""
    path = _path(directory, digest)
    try:
        with safe_open(str(path), framework="pt") as file:
            order = json.loads(file.metadata()["order"])
            named = [(name, file.get_tensor(name)) for name in order]
            complete = len(named) == len(file.keys())
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as e:
        logger.warning("kept state %s… is unreadable (%s): deleted", digest.hex()[:16], e)
        path.unlink(missing_ok=True)
        return None
    if not complete or named_state_digest(named) != digest:
        logger.warning("kept state %s… no longer has its digest: deleted", digest.hex()[:16])
        path.unlink(missing_ok=True)
        return None
    return [tensor for _, tensor in named]
