"""Strict standard base64 (RFC 4648 §4) and hash lines, shared by the note, checkpoint and receipt parsers."""

from __future__ import annotations

import base64
import binascii

from potluck.errors import VerificationError


def b64encode(data: bytes) -> str:
    """Standard, padded base64 as text."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str) -> bytes:
    """Decode standard padded base64, accepting only the canonical encoding.

    Python's decoder ignores non-zero padding bits, so two texts can decode to the same bytes;
    re-encoding and comparing makes every accepted text the one and only spelling of its bytes,
    so a changed character in a signed or proven line can never go unnoticed.
    Raises ValueError on anything else.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not standard base64: {exc}") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("not canonical standard base64")
    return data


def decode_hash(text: str, what: str, size: int = 32) -> bytes:
    """A base64 hash of `size` bytes, or a VerificationError saying which line (`what`) is wrong."""
    try:
        digest = b64decode_strict(text)
    except ValueError as exc:
        raise VerificationError(f"{what} is {exc}") from None
    if len(digest) != size:
        raise VerificationError(f"{what} is {len(digest)} bytes, expected {size}")
    return digest
