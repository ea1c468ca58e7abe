"""Receipts: C2SP transparency-log proofs (https://c2sp.org/tlog-proof), offline-verifiable.

A receipt proves that an entry is in the log: it carries the entry bytes (on the spec's
optional `extra` line), the entry's index, an RFC 6962 inclusion proof and the signed
checkpoint the proof leads to, verbatim:

    c2sp.org/tlog-proof@v1
    extra <base64 entry bytes>
    index <N>
    <base64 proof hash, one per line, from the leaf's sibling upwards>

    <checkpoint note>

The spec says the `extra` data is unauthenticated; here it is the entry itself, whose leaf hash
the proof must lead from, so the checkpoint's signature covers it after all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from potluck.errors import VerificationError

from ._codec import b64decode_strict, b64encode, decode_hash
from .checkpoint import Checkpoint, verify_checkpoint
from .merkle import HASH_SIZE, leaf_hash, root_from_inclusion_proof, verify_inclusion
from .note import split_note

__all__ = ["RECEIPT_HEADER", "Receipt", "make_receipt", "make_receipts", "parse_receipt", "verify_receipt"]

RECEIPT_HEADER = "c2sp.org/tlog-proof@v1"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Receipt:
    """A parsed, not yet verified, receipt. `entry` is None when the `extra` line is absent."""

    entry: bytes | None
    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str


def make_receipt(entry: bytes, index: int, proof: Sequence[bytes], checkpoint_note: str) -> str:
    """Write a receipt for `entry` at `index`, proven by `proof` against `checkpoint_note`.

    Refuses (ValueError) to write a receipt that could not verify: the proof must lead from the
    entry to the checkpoint's root. The checkpoint's signature is not checked here.
    """
    return make_receipts([(entry, index, proof)], checkpoint_note)[0]


def make_receipts(proven: Sequence[tuple[bytes, int, Sequence[bytes]]], checkpoint_note: str) -> list[str]:
    """`make_receipt` for many (entry, index, proof) against one checkpoint, which is read once."""
    if not checkpoint_note.endswith("\n"):
        raise ValueError("checkpoint note must end with a newline")
    try:
        body, _ = split_note(checkpoint_note)
        checkpoint = Checkpoint.parse(body)
    except VerificationError as exc:
        raise ValueError(f"refusing to write a receipt that would not verify: {exc}") from None
    receipts = []
    for entry, index, proof in proven:
        try:
            computed = root_from_inclusion_proof(leaf_hash(entry), index, checkpoint.size, proof)
        except VerificationError as exc:
            raise ValueError(f"refusing to write a receipt that would not verify: {exc}") from None
        if computed != checkpoint.root_hash:
            raise ValueError(
                f"refusing to write a receipt that would not verify: the proof for index {index} does not "
                f"lead to the root of the checkpoint of size {checkpoint.size}"
            )
        lines = [RECEIPT_HEADER, f"extra {b64encode(entry)}", f"index {index}", *map(b64encode, proof)]
        receipts.append("\n".join(lines) + "\n\n" + checkpoint_note)
    return receipts


def parse_receipt(text: str | bytes) -> Receipt:
    """Parse a receipt without verifying it; raises `VerificationError` naming the malformed line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError("malformed receipt: not valid UTF-8") from None
    split = text.find("\n\n")
    if split < 0:
        raise VerificationError("malformed receipt: no blank line before the checkpoint")
    lines = text[:split].split("\n")
    checkpoint_note = text[split + 2 :]
    if lines[0] != RECEIPT_HEADER:
        raise VerificationError(f"malformed receipt: line 1 is {lines[0][:60]!r}, expected {RECEIPT_HEADER!r}")
    pos = 1
    entry: bytes | None = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        try:
            entry = b64decode_strict(lines[pos][len("extra ") :])
        except ValueError as exc:
            raise VerificationError(f"malformed receipt: line {pos + 1} (extra) is {exc}") from None
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        got = repr(lines[pos][:60]) if pos < len(lines) else "nothing"
        raise VerificationError(f"malformed receipt: line {pos + 1} should be 'index N', got {got}")
    index_text = lines[pos][len("index ") :]
    if not _DECIMAL.fullmatch(index_text):
        raise VerificationError(
            f"malformed receipt: line {pos + 1}: index {index_text[:30]!r} is not a decimal without leading zeros"
        )
    index = int(index_text)
    proof: list[bytes] = []
    for lineno, line in enumerate(lines[pos + 1 :], start=pos + 2):
        proof.append(decode_hash(line, f"malformed receipt: line {lineno} (proof hash)", HASH_SIZE))
    if not checkpoint_note:
        raise VerificationError("malformed receipt: no checkpoint after the blank line")
    return Receipt(entry=entry, index=index, proof=tuple(proof), checkpoint_note=checkpoint_note)


def verify_receipt(
    text: str | bytes,
    verifier_key_text: str,
    expected_origin: str | None = None,
    *,
    entry: bytes | None = None,
) -> tuple[int, bytes, Checkpoint]:
    """Verify a receipt offline against the log's verifier key; returns (index, entry, checkpoint).

    `entry` may be given when the receipt has no `extra` line, or to insist on particular bytes.
    Raises `VerificationError` saying what failed: a malformed line, the checkpoint's signature
    or origin, an index outside the checkpoint, or a proof that does not lead to its root.
    """
    receipt = parse_receipt(text)
    try:
        checkpoint = verify_checkpoint(receipt.checkpoint_note, verifier_key_text, expected_origin)
    except VerificationError as exc:
        raise VerificationError(f"receipt: {exc}") from None
    if receipt.entry is not None and entry is not None and receipt.entry != entry:
        raise VerificationError("receipt: the entry it carries differs from the entry given to check")
    data = receipt.entry if receipt.entry is not None else entry
    if data is None:
        raise VerificationError("receipt: carries no entry (no extra line) and none was given to check")
    if receipt.index >= checkpoint.size:
        raise VerificationError(f"receipt: index {receipt.index} out of range for checkpoint of size {checkpoint.size}")
    try:
        verify_inclusion(leaf_hash(data), receipt.index, checkpoint.size, receipt.proof, checkpoint.root_hash)
    except VerificationError as exc:
        raise VerificationError(f"receipt: proof does not lead to the checkpoint root: {exc}") from None
    return receipt.index, data, checkpoint
