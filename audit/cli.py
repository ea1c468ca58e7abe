"""`potluck audit …`: check the credit log without trusting the tracker."""

from __future__ import annotations

from potluck.cli import new_group

audit_app = new_group("Verify a swarm's credit log, receipts and balances without trusting the tracker.")
