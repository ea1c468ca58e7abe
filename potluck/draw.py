"""The keyed draws that decide a swarm's data: which samples an account trains on at (epoch, step).

Deterministic and portable (BLAKE2b and SHAKE-256, no RNG), so the node, the tracker's verifier and
an auditor all rebuild the same draw from the signed manifest's swarm seed.
"""

from __future__ import annotations

import hashlib
import struct

_SAMPLE_SEED_TAG = b"potluck/v1/sample-seed"


def derive_sample_seed(data_seed: bytes, account_id: str, epoch: int, step: int) -> bytes:
    """The 32-byte seed from which the batch an account trains on at (epoch, step) is generated.

    A keyed BLAKE2b over a length-prefixed encoding, so that no two distinct inputs collide by
    concatenation and nobody without the swarm's data seed can predict it.
    """
    if not isinstance(data_seed, bytes | bytearray) or len(data_seed) == 0:
        raise ValueError("data_seed must be non-empty bytes")
    if epoch < 0 or step < 0:
        raise ValueError(f"epoch and step must be non-negative (got epoch={epoch}, step={step})")
    key = bytes(data_seed) if len(data_seed) <= 64 else hashlib.blake2b(data_seed).digest()
    account = account_id.encode()
    message = b"".join(
        (
            _SAMPLE_SEED_TAG,
            struct.pack(">I", len(account)),
            account,
            struct.pack(">QQ", epoch, step),
        )
    )
    return hashlib.blake2b(message, key=key, digest_size=32).digest()


def random_bytes(seed: bytes, num_bytes: int, *, label: bytes = b"") -> bytes:
    """A deterministic, portable stream of pseudo-random bytes (SHAKE-256 of label and seed)."""
    return hashlib.shake_256(label + b"\x00" + seed).digest(num_bytes)


def uniform_indices(seed: bytes, count: int, upper: int, *, label: bytes = b"") -> list[int]:
    """`count` integers in [0, upper) derived from `seed`; 64 bits each, so the modulo bias is negligible."""
    if upper <= 0:
        raise ValueError(f"upper must be positive (got {upper})")
    raw = random_bytes(seed, 8 * count, label=label)
    return [int.from_bytes(raw[8 * i : 8 * i + 8], "big") % upper for i in range(count)]
