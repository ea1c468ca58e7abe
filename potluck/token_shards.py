"""Token shards: the training text of a swarm, as `potluck data prepare` writes it and the `lm` task reads it.

One shard is one file, little-endian:

    offset  size  field
    0       8     magic b"PLTOKENS"
    8       4     uint32 format version (1)
    12      4     uint32 bytes per token: 2 (uint16, a vocabulary of at most 65,536) or 4 (uint32)
    16      8     uint64 number of tokens N
    24      N×w   the tokens

Documents follow one another, each ended by the tokenizer's end-of-text token. A shard is named in
the manifest by its sha256 like any other dataset shard, so a node checks it before reading it.
"""

from __future__ import annotations

import struct

import numpy as np

from potluck.errors import ConfigError

MAGIC = b"PLTOKENS"
VERSION = 1
HEADER = struct.Struct("<8sIIQ")


def token_width(vocab_size: int) -> int:
    """Bytes per token for a vocabulary of `vocab_size` ids."""
    return 2 if vocab_size <= 1 << 16 else 4


def encode_shard(tokens: np.ndarray, width: int) -> bytes:
    dtype = np.dtype("<u2") if width == 2 else np.dtype("<u4")
    if len(tokens) and int(tokens.max()) >= 1 << (8 * width):
        raise ValueError(f"token id {int(tokens.max())} does not fit in {width} bytes")
    return HEADER.pack(MAGIC, VERSION, width, len(tokens)) + tokens.astype(dtype).tobytes()


def decode_shard(data: bytes, what: str = "token shard") -> np.ndarray:
    """The tokens of a shard; ConfigError naming `what` and the fault if it is not one."""
    if len(data) < HEADER.size:
        raise ConfigError(f"{what}: {len(data)} bytes is shorter than a token shard's {HEADER.size}-byte header")
    magic, version, width, count = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ConfigError(f"{what}: not a token shard (it starts {magic!r}, not {MAGIC!r})")
    if version != VERSION:
        raise ConfigError(f"{what}: token shard format {version}, this potluck reads {VERSION}")
    if width not in (2, 4):
        raise ConfigError(f"{what}: {width} bytes per token (must be 2 or 4)")
    if len(data) != HEADER.size + width * count:
        raise ConfigError(f"{what}: the header says {count} tokens of {width} bytes, the file holds "
                          f"{len(data) - HEADER.size} bytes after it")
    return np.frombuffer(data, dtype="<u2" if width == 2 else "<u4", offset=HEADER.size, count=count)
