"""A report the tracker does not log, and why: the answer the node gets in its ack."""

from __future__ import annotations

from potluck.errors import PotluckError


class Rejected(PotluckError):
    """A report that is not logged; `code` is the gRPC status name that fits (e.g. "ALREADY_EXISTS").

    `temporary`: the same bytes may be logged later (a rate limit, another manifest running now, an
    epoch ahead of the swarm's); the node keeps the report queued and sends it again. Otherwise final.
    """

    def __init__(self, code: str, reason: str, *, temporary: bool = False):
        super().__init__(f"{code}: {reason}")
        self.code, self.reason, self.temporary = code, reason, temporary

    def __reduce__(self):  # it crosses from the report-opening workers, pickled
        return _rebuild, (self.code, self.reason, self.temporary)


def _rebuild(code: str, reason: str, temporary: bool) -> Rejected:
    return Rejected(code, reason, temporary=temporary)
