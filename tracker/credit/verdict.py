"""What a check decided about one grant: the message from the verifier (and the attestation check) to the policy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# A reason echoes what a report and its peer said, so an attacker sizes it: cut, so that the strike, forfeit
# and ban entries it goes into always fit a ledger entry (one that did not would fail the writer's batch).
MAX_REASON_CHARS = 1000


def bounded_reason(text: str) -> str:
    if len(text) <= MAX_REASON_CHARS:
        return text
    return f"{text[:MAX_REASON_CHARS - 40]}… ({len(text) - MAX_REASON_CHARS + 40} characters cut)"


class Outcome(Enum):
    PASSED = "passed"  # the checks made found nothing wrong, without a recomputation
    RECOMPUTED = "recomputed"  # recomputation reproduced the claims: evidence of honest work
    FAILED = "failed"  # a claim does not hold: a strike, charged to the report's signer
    # The verifier gave up on it (it crashed on it): no evidence against its sender, and no credit. A sender that
    # cannot serve the state its report names has FAILED, not this.
    UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True, kw_only=True)
class Verdict:
    index: int  # ledger index of the grant
    account_id: str
    outcome: Outcome
    check: str  # which check decided: "progress", "recompute", "attestation"
    reason: str = ""  # why it failed or could not be decided
    cpu_seconds: float = 0.0  # what a recomputation cost the verifier

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", bounded_reason(self.reason))
