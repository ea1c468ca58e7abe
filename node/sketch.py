"""Small, checkable fingerprints of training: a gradient sketch and a model-state digest.

The gradient sketch is a random projection of the flattened gradient onto `dim` directions
with entries +-1/sqrt(dim) (Achlioptas). The signs come from SHAKE-256 of the seed, chunk by chunk,
so every platform draws the same signs; a window's chunks are kept while it lasts (4 bytes per
parameter and direction). Each micro-batch's gradient gets its own sketch, so the verifier can
check a few micro-batches, picked where the node cannot predict, instead of replaying a window.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable

import numpy as np
import torch

_SKETCH_TAG = b"potluck/v1/gradient-sketch"
_SKETCH_SEED_TAG = b"potluck/v1/sketch-seed"
_DIGEST_TAG = b"potluck/v1/state-digest"
# Each micro-batch's gradient is sketched to this many values; reports carry one sketch per micro-batch.
SKETCH_DIM = 16
_CHUNK_ELEMENTS = 1 << 15  # a chunk's sign matrix is _CHUNK_ELEMENTS x dim float64 (16 MiB at dim 64)


def sketch_seed(data_seed: bytes, account_id: str, epoch: int) -> bytes:
    """The per-window projection seed: keyed by the swarm's seed, so a node cannot precompute it."""
    key = bytes(data_seed) if len(data_seed) <= 64 else hashlib.blake2b(data_seed).digest()
    account = account_id.encode()
    message = _SKETCH_SEED_TAG + struct.pack(">I", len(account)) + account + struct.pack(">Q", epoch)
    return hashlib.blake2b(message, key=key, digest_size=32).digest()


class SketchProjector:
    """A fixed projection (from `seed`) applied to many gradients: one window's micro-batches.

    The sign matrices are generated once per chunk and kept (as float32, on the gradients' device),
    so projecting a micro-batch's gradient costs one matrix-vector product per chunk.
    """

    def __init__(self, seed: bytes, dim: int = SKETCH_DIM):
        if dim <= 0:
            raise ValueError(f"dim must be positive (got {dim})")
        self.seed, self.dim = seed, dim
        self._signs: dict[tuple[int, int, torch.device], torch.Tensor] = {}

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
        result = torch.zeros(self.dim, dtype=torch.float64)
        if not tensors:
            return result.tolist()
        flat = torch.cat([t.detach().reshape(-1).to(torch.float32) for t in tensors])
        for chunk_index, start in enumerate(range(0, flat.numel(), _CHUNK_ELEMENTS)):
            chunk = flat[start:start + _CHUNK_ELEMENTS]
            key = (chunk_index, chunk.numel(), chunk.device)
            if key not in self._signs:
                signs = _sign_matrix(self.seed, chunk_index, chunk.numel(), self.dim)
                self._signs[key] = torch.from_numpy(signs.astype(np.float32)).to(chunk.device)
            result += (chunk @ self._signs[key]).to(device="cpu", dtype=torch.float64)
        return (result / math.sqrt(self.dim)).tolist()


def gradient_sketch(
    model_or_grads: torch.nn.Module | torch.Tensor | Iterable[torch.Tensor | None], seed: bytes, dim: int = 64
) -> list[float]:
    """Project the flattened gradient onto `dim` seeded random directions (see `SketchProjector`)."""
    return SketchProjector(seed, dim).sketch(model_or_grads)


def state_digest(model: torch.nn.Module) -> bytes:
    """SHA-256 of the parameters, sorted by name, each as name, shape and float32 little-endian values."""
    digest = hashlib.sha256(_DIGEST_TAG)
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        encoded_name = name.encode()
        digest.update(struct.pack(">I", len(encoded_name)) + encoded_name)
        digest.update(struct.pack(">I", param.dim()) + b"".join(struct.pack(">Q", n) for n in param.shape))
        values = param.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
        digest.update(values.astype("<f4", copy=False).tobytes())
    return digest.digest()


def _sign_matrix(seed: bytes, chunk_index: int, rows: int, dim: int) -> np.ndarray:
    """A rows x dim matrix of +-1, one bit each, from SHAKE-256(tag, seed, chunk index)."""
    num_bits = rows * dim
    prefix = _SKETCH_TAG + struct.pack(">I", len(seed)) + seed
    stream = hashlib.shake_256(prefix + struct.pack(">Q", chunk_index))
    bits = np.unpackbits(np.frombuffer(stream.digest((num_bits + 7) // 8), dtype=np.uint8), count=num_bits)
    return (1.0 - 2.0 * bits.astype(np.float64)).reshape(rows, dim)
