"""C2SP transparency-log checkpoints (https://c2sp.org/tlog-checkpoint): a signed tree head.

The body is `origin\\nsize\\nbase64(root)\\n`, optionally followed by extension lines (never
written here, tolerated on read), and is signed as a note whose key name is the origin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nacl.signing import SigningKey

from potluck.errors import VerificationError

from ._codec import b64encode, decode_hash
from .merkle import HASH_SIZE
from .note import open_note, parse_verifier_key, sign_note

__all__ = ["Checkpoint", "sign_checkpoint", "verify_checkpoint"]

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: its origin, its size and the RFC 6962 root hash at that size.

    `extensions` holds extension lines read from someone else's checkpoint; ours have none.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise ValueError(f"checkpoint origin must be one non-empty line, got {self.origin!r}")
        if self.size < 0:
            raise ValueError(f"checkpoint size must be ≥ 0, got {self.size}")
        if len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"checkpoint root hash must be {HASH_SIZE} bytes, got {len(self.root_hash)}")
        for line in self.extensions:
            if not line or "\n" in line:
                raise ValueError(f"checkpoint extension lines must be single non-empty lines, got {line!r}")

    def to_body(self) -> str:
        """The note text: origin, size and base64 root, each ending in a newline."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint body; raises `VerificationError` saying which line is malformed."""
        if not body.endswith("\n"):
            raise VerificationError("malformed checkpoint: body does not end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise VerificationError(f"malformed checkpoint: expected at least 3 lines, got {len(lines)}")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise VerificationError("malformed checkpoint: origin (line 1) is empty")
        if not _DECIMAL.fullmatch(size_text):
            raise VerificationError(
                f"malformed checkpoint: size (line 2) {size_text!r} is not a decimal without leading zeros"
            )
        root = decode_hash(root_text, "malformed checkpoint: root hash (line 3)", HASH_SIZE)
        for i, line in enumerate(extensions, start=4):
            if not line:
                raise VerificationError(f"malformed checkpoint: extension line {i} is empty")
        return cls(origin=origin, size=int(size_text), root_hash=root, extensions=tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signing_key: SigningKey) -> str:
    """Sign a checkpoint as a note under the key name `checkpoint.origin`; returns the note text."""
    return sign_note(checkpoint.to_body(), checkpoint.origin, signing_key)


def verify_checkpoint(note: str | bytes, verifier_key_text: str, expected_origin: str | None = None) -> Checkpoint:
    """Verify a checkpoint note against the log's verifier key and return the checkpoint.

    The origin must equal `expected_origin`, which defaults to the verifier key's name (the
    key of a log is named after its origin). Raises `VerificationError` for a missing or bad
    signature, a malformed body or the wrong origin.
    """
    key_name, _, _ = parse_verifier_key(verifier_key_text)
    body = open_note(note, verifier_key_text)
    checkpoint = Checkpoint.parse(body)
    want = key_name if expected_origin is None else expected_origin
    if checkpoint.origin != want:
        raise VerificationError(f"checkpoint: expected origin {want!r}, got {checkpoint.origin!r}")
    return checkpoint
