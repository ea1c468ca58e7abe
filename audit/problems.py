"""What an audit found wrong: one line each, naming the entry index where there is one."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Problem", "short_account"]

_ENTRY_PREFIX = re.compile(r"entr(?:y|ies) (\d+)")


def short_account(account_id: str) -> str:
    """An account id as problems name it: its first 12 hex digits (or, if it is not one, what it is)."""
    return account_id[:12] + "…" if len(account_id) > 12 else repr(account_id)


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold. `kind` groups problems for scripts: checkpoint, rollback, split-view,
    fork, entry, root, balance, compare."""

    kind: str
    message: str

    @property
    def index(self) -> int | None:
        """The first entry index the message names, if it names one."""
        match = _ENTRY_PREFIX.match(self.message)
        return int(match.group(1)) if match else None

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict:
        return {"kind": self.kind, "index": self.index, "message": self.message}
