"""`potluck audit receipt`: check offline that a credit entry is in the log, and say what it grants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from potluck.errors import ConfigError, VerificationError
from potluck.tlog.note import parse_verifier_key
from potluck.tlog.receipt import parse_receipt, verify_receipt

from .replay import check_entries

__all__ = ["ReceiptSummary", "check_receipt", "check_receipt_file"]


@dataclass(frozen=True)
class ReceiptSummary:
    """A verified receipt: which entry, in which log at which size, and what the entry says."""

    index: int
    tree_size: int
    origin: str
    kind: str
    account_id: str
    details: dict

    def to_json(self) -> dict:
        return {"ok": True, "index": self.index, "tree_size": self.tree_size, "origin": self.origin,
                "kind": self.kind, "account_id": self.account_id, **self.details}


def check_receipt(text: str | bytes, log_key: str) -> ReceiptSummary:
    """Verify a receipt against the pinned log key and check the entry it proves as an audit would.

    Raises `VerificationError` naming the entry index and what is wrong.
    """
    try:
        index = parse_receipt(text).index
    except VerificationError as exc:
        raise VerificationError(f"not a valid receipt: {exc}") from None
    origin = parse_verifier_key(log_key)[0]
    try:
        _, data, checkpoint = verify_receipt(text, log_key)
    except VerificationError as exc:
        raise VerificationError(f"entry {index}: {exc}") from None
    # The entry is proven to be in the log; it must also be an entry an audit would accept.
    [(entry, _, _, problems)] = check_entries(origin, index, [data])
    if entry is None or problems:
        raise VerificationError(problems[0])
    kind = entry.WhichOneof("kind")
    body = getattr(entry, kind)
    details: dict = {}
    if kind == "grant":
        details = {"credits": body.credits, "flops": body.flops, "num_samples": body.num_samples,
                   "policy_version": body.policy_version,
                   # what the grant also credits the owners of the training text
                   "data": [{"owner": c.owner, "credits": c.credits, "flops": c.flops, "windows": c.windows}
                            for c in body.data]}
    elif kind in ("vest", "forfeit"):
        details = {"flops": body.flops, "grant_indices": list(body.grant_indices)}
    return ReceiptSummary(index=index, tree_size=checkpoint.size, origin=checkpoint.origin, kind=kind,
                          account_id=body.account_id, details=details)


def check_receipt_file(path: Path, log_key: str) -> ReceiptSummary:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return check_receipt(text, log_key)
    except VerificationError as exc:
        raise VerificationError(f"{path}: {exc}") from None
