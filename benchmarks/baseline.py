"""What every potluck benchmark divides by: PyNaCl Ed25519 verifications per second on one core,
measured in the same run (these machines are shared and noisy, so absolute rates mean little)."""

import os
import time

from nacl.signing import SigningKey


def best_of(repeat: int, measure, *args, **kwargs) -> float:
    return max(measure(*args, **kwargs) for _ in range(repeat))


def ed25519_verifications_per_s(seconds: float) -> float:
    """PyNaCl verifying one ~300-byte message (a report's size) in a loop, one core."""
    key = SigningKey(b"\x01" * 32)
    message = os.urandom(300)
    signature = key.sign(message).signature
    verify_key = key.verify_key
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(1000):
            verify_key.verify(message, signature)
        count += 1000
    return count / elapsed
