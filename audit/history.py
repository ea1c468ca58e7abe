"""Naming the entry where two histories of one log part: what the auditor verified before (or another
auditor saw) against what the tracker serves now. Works on leaf hashes, so a million entries cost 32 MB."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import DecodeError

from potluck.proto.ledger_pb2 import LedgerEntry

__all__ = ["describe_divergence", "describe_edit"]


def describe_divergence(old: Sequence[bytes], new: Sequence[bytes], *, new_size: int,
                        old_name: str = "this auditor verified") -> tuple[int, str] | None:
    """Where and how `new` (a prefix of the served log of `new_size`) departs from `old` (leaf hashes).

    Returns (index, one-line message starting `entry N:` or `entries N..M:`), or None when `new`
    extends `old` unchanged. `old_name` completes "the entry {old_name}".
    """
    common = min(len(old), len(new))
    first = next((i for i in range(common) if old[i] != new[i]), None)
    if first is None:
        if new_size < len(old):
            gone = f"entry {new_size}" if new_size == len(old) - 1 else f"entries {new_size}..{len(old) - 1}"
            return new_size, (f"{gone}: gone: the tracker's log now ends at size {new_size}, "
                              f"but {old_name} {len(old)} entries")
        return None
    i = first

    def at(seq: Sequence[bytes], j: int) -> bytes | None:
        return seq[j] if j < len(seq) else None

    if at(old, i + 1) is not None and new[i] == old[i + 1] and at(new, i + 1) in (None, at(old, i + 2)):
        return i, (f"entry {i}: deleted: the tracker now serves what was entry {i + 1} at index {i}, "
                   "and every later entry one place earlier")
    if at(new, i + 1) is not None and new[i + 1] == old[i]:
        return i, f"entry {i}: inserted: the tracker now serves an entry at index {i} that was not there before"
    where_old = {h: j for j, h in enumerate(old)}
    j = where_old.get(new[i])
    if j is not None and j != i:
        if at(new, j) == old[i]:
            return i, f"entries {i} and {j}: reordered: the tracker now serves them swapped"
        return i, f"entry {i}: reordered: the tracker now serves what was entry {j} at index {i}"
    return i, (f"entry {i}: edited: the tracker now serves other bytes at index {i} than the entry "
               f"{old_name}")


def describe_edit(old: bytes, new: bytes) -> str:
    """Which fields differ between two encodings of an entry, e.g. `grant.num_samples 64 → 6400`; '' if unknown."""
    try:
        a, b = LedgerEntry.FromString(old), LedgerEntry.FromString(new)
    except DecodeError:
        return ""
    changes = [f"{name} {getattr(a, name)!r} → {getattr(b, name)!r}"
               for name in ("origin", "logged_at_ms") if getattr(a, name) != getattr(b, name)]
    kind_a, kind_b = a.WhichOneof("kind"), b.WhichOneof("kind")
    if kind_a != kind_b:
        changes.append(f"kind {kind_a} → {kind_b}")
    elif kind_a is not None:
        body_a, body_b = getattr(a, kind_a), getattr(b, kind_a)
        for field in body_a.DESCRIPTOR.fields:
            va, vb = getattr(body_a, field.name), getattr(body_b, field.name)
            if va == vb:
                continue
            if isinstance(va, bytes):
                changes.append(f"{kind_a}.{field.name}")
            elif isinstance(va, int | str) and len(str(va)) + len(str(vb)) < 80:
                changes.append(f"{kind_a}.{field.name} {va!r} → {vb!r}")
            else:
                changes.append(f"{kind_a}.{field.name}")
    return "changed " + ", ".join(changes) if changes else ""
