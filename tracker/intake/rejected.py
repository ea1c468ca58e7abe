"""A report the tracker does not log, and why: the answer the node gets in its ack."""

from __future__ import annotations

from potluck.errors import PotluckError


class Rejected(PotluckError):
    """A report that is not logged; `code` is the gRPC status name that fits (e.g. "ALREADY_EXISTS")."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code, self.reason = code, reason

    def __reduce__(self):  # it crosses from the report-opening workers, pickled
        return Rejected, (self.code, self.reason)
