"""Small, checkable fingerprints of training: a gradient sketch and a model-state digest.

The gradient sketch maps the flattened gradient (P values) to `dim` values: the gradient is cut into
`dim` contiguous blocks of ceil(P / dim) values, and each sketch value is one block's sum with a
random sign on every entry. It is a random projection whose directions have disjoint supports: as
hard to fake as a dense one (every value needs its block's true gradient, and together the blocks
cover every parameter, the first layers' too), and the node's cost is one pass over the gradient.
The signs come from SHAKE-256 of the seed, one bit per parameter, so every platform draws the same;
a window keeps them while it lasts (as float32 on the gradients' device: 4 bytes per parameter).

A window's micro-batches are cut into segments of `STEPS_PER_SKETCH` micro-batches (the last may be shorter), and
each segment's summed gradient gets its own sketch, so the verifier can check a few segments, picked
where the node cannot predict, instead of replaying a window. Segments rather than single micro-batches
keep the node's cost to one projection per `STEPS_PER_SKETCH` steps (of the segment's own gradient sum,
which the node keeps apart until it is sketched: node/attesting_averager.py).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

import numpy as np
import torch

from potluck.proto.wire import SKETCH_DIM

_SKETCH_TAG = b"potluck/v2/gradient-sketch"
_SKETCH_SEED_TAG = b"potluck/v1/sketch-seed"
_DIGEST_TAG = b"potluck/v1/state-digest"
_CHUNK_ELEMENTS = 1 << 20  # signs are drawn from one SHAKE-256 stream per chunk of this many parameters


def sketch_seed(data_seed: bytes, account_id: str, epoch: int) -> bytes:
    """The per-window projection seed: keyed by the swarm's seed, so a node cannot precompute it."""
    key = bytes(data_seed) if len(data_seed) <= 64 else hashlib.blake2b(data_seed).digest()
    account = account_id.encode()
    message = _SKETCH_SEED_TAG + struct.pack(">I", len(account)) + account + struct.pack(">Q", epoch)
    return hashlib.blake2b(message, key=key, digest_size=32).digest()


class SketchProjector:
    """A fixed projection (from `seed`) applied to many gradients: one window's segments.

    The signs are drawn once per gradient size and kept, so a sketch costs one pass over the gradient.
    """

    def __init__(self, seed: bytes, dim: int = SKETCH_DIM):
        if dim <= 0:
            raise ValueError(f"dim must be positive (got {dim})")
        self.seed, self.dim = seed, dim
        self._signs: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}  # signs, padding

    @torch.no_grad()
    def sketch(self, model_or_grads: torch.nn.Module | torch.Tensor | Iterable[torch.Tensor | None]) -> list[float]:
        """Project the flattened gradient onto `dim` seeded random directions.

        `model_or_grads` is a module (its parameters' `.grad`, in `parameters()` order, a missing
        gradient counting as zeros), one tensor, or a sequence of tensors (None counts as nothing).
        """
        if isinstance(model_or_grads, torch.nn.Module):
            tensors = [
                p.grad if p.grad is not None else torch.zeros_like(p) for p in model_or_grads.parameters()
            ]
        elif isinstance(model_or_grads, torch.Tensor):
            tensors = [model_or_grads]
        else:
            tensors = [t for t in model_or_grads if t is not None]
        numel = sum(t.numel() for t in tensors)
        if numel == 0:
            return [0.0] * self.dim
        width = -(-numel // self.dim)
        key = (numel, tensors[0].device)
        if key not in self._signs:
            signs = np.zeros(self.dim * width, dtype=np.float32)
            signs[:numel] = _signs(self.seed, numel)
            padding = torch.zeros(self.dim * width - numel, device=key[1])
            self._signs[key] = torch.from_numpy(signs).to(key[1]).view(self.dim, width, 1), padding
        signs, padding = self._signs[key]
        flat = torch.cat([*(t.reshape(-1).float() for t in tensors), padding])
        return torch.bmm(flat.view(self.dim, 1, width), signs).view(self.dim).tolist()


def gradient_sketch(
    model_or_grads: torch.nn.Module | torch.Tensor | Iterable[torch.Tensor | None], seed: bytes, dim: int = SKETCH_DIM
) -> list[float]:
    """Project the flattened gradient onto `dim` seeded random directions (see `SketchProjector`)."""
    return SketchProjector(seed, dim).sketch(model_or_grads)


def announced_states_key(run_id: str) -> str:
    """The DHT key under which each peer announces (epoch, state_digest) of the window it is in.

    A verifier that lacks the state a report names knows, from these, that it is out there to download."""
    return f"{run_id}_potluck_states"


def state_digest(model: torch.nn.Module) -> bytes:
    """SHA-256 of the parameters, sorted by name, each as name, shape and float32 little-endian values."""
    return named_state_digest(model.named_parameters())


def named_state_digest(named: Iterable[tuple[str, torch.Tensor]]) -> bytes:
    """`state_digest` of (name, parameter) pairs: of a model's state read back from a file."""
    digest = hashlib.sha256(_DIGEST_TAG)
    for name, param in sorted(named, key=lambda item: item[0]):
        encoded_name = name.encode()
        digest.update(struct.pack(">I", len(encoded_name)) + encoded_name)
        digest.update(struct.pack(">I", param.dim()) + b"".join(struct.pack(">Q", n) for n in param.shape))
        values = param.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
        digest.update(values.astype("<f4", copy=False).tobytes())
    return digest.digest()


def _signs(seed: bytes, numel: int) -> np.ndarray:
    """`numel` values of +-1, one bit each, from SHAKE-256(tag, seed, chunk index) per chunk of parameters."""
    prefix = _SKETCH_TAG + struct.pack(">I", len(seed)) + seed
    chunks = []
    for index, start in enumerate(range(0, numel, _CHUNK_ELEMENTS)):
        count = min(_CHUNK_ELEMENTS, numel - start)
        stream = hashlib.shake_256(prefix + struct.pack(">Q", index))
        bits = np.unpackbits(np.frombuffer(stream.digest((count + 7) // 8), dtype=np.uint8), count=count)
        chunks.append(1.0 - 2.0 * bits.astype(np.float32))
    return np.concatenate(chunks)
