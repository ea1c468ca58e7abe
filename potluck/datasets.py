"""Dataset shards on disk: found by sha256 or by name, and never used before their sha256 is checked."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from potluck.errors import VerificationError
from potluck.proto.manifest_pb2 import DatasetShard


def check_sha256(data: bytes, expected: str, where: str) -> None:
    """Raise `VerificationError` naming `where` unless `data` hashes to `expected` (lowercase hex)."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise VerificationError(f"{where}: expected sha256 {expected}, got {actual}")


def check_shard(data: bytes, shard: DatasetShard, where: str) -> None:
    """Raise `VerificationError` naming `where` unless `data` is the shard the manifest names: its size (what
    the owners' data credit is computed from, potluck/data_credit.py) and its sha256."""
    if len(data) != shard.size_bytes:
        raise VerificationError(f"{where}: expected {shard.size_bytes} bytes (the manifest's size_bytes), "
                                f"got {len(data)}")
    check_sha256(data, shard.sha256, where)


def find_shard(shard: DatasetShard, directories: Iterable[Path]) -> Path | None:
    """The first file in `directories` named after the shard's sha256 or its name (not yet checked)."""
    for directory in directories:
        for path in (directory / shard.sha256, directory / shard.name):
            if path.is_file():
                return path
    return None
