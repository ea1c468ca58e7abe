"""The swarm's progress as the tracker sees it: epoch, throughput and loss from accepted reports, and
how far apart the volunteers' parameters lie, from the verifier, and how the verifier process is doing."""

from __future__ import annotations

import re
import time
from collections import Counter, deque

from potluck.proto.report_pb2 import ContributionReport

RATE_WINDOW = 120.0  # seconds of reports that the throughput is averaged over
AVERAGING_EPOCHS = 8  # the latest epochs whose averaging rounds `swarm status` shows
MAX_REASONS = 4  # distinct failure reasons shown per epoch (the rest are counted as "other")
REASON_CHARS = 80


class SwarmStats:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.epoch = 0
        self.loss: float | None = None
        self.num_reports = 0
        self.recent: deque[tuple[float, int]] = deque()  # (arrival time, samples)
        self.losses_by_epoch: dict[int, tuple[float, int]] = {}  # epoch -> (sum of reports' mean losses, reports)
        self.spread: tuple[int, int, float] | None = None  # (epoch, volunteers compared, relative spread)
        self.held_out: tuple[int, float] | None = None  # (epoch, loss on the held-out shards), the latest
        self.verifier_health = None  # with a verifier: a callable returning its `VerifierHealth`
        # epoch -> account -> why its round failed ("" if it averaged), as its reports say.
        self.rounds: dict[int, dict[str, str]] = {}

    def record(self, report: ContributionReport) -> None:
        now = self.clock()
        self.num_reports += 1
        self.epoch = max(self.epoch, report.epoch)
        self.record_round(report)
        self.recent.append((now, report.num_samples))
        if report.losses:
            total, count = self.losses_by_epoch.get(report.epoch, (0.0, 0))
            self.losses_by_epoch[report.epoch] = (total + sum(report.losses) / len(report.losses), count + 1)
            for old in [e for e in self.losses_by_epoch if e < self.epoch - 1]:
                del self.losses_by_epoch[old]
            total, count = self.losses_by_epoch[max(self.losses_by_epoch)]
            self.loss = total / count

    def record_round(self, report: ContributionReport) -> None:
        """How `report`'s averaging round went: an account's epoch counts as averaged if any of its rounds did."""
        if report.epoch + AVERAGING_EPOCHS <= self.epoch and self.rounds:
            return  # too old to show
        by_account = self.rounds.setdefault(report.epoch, {})
        if by_account.get(report.account_id) != "":
            by_account[report.account_id] = "" if report.averaging.succeeded else failure_kind(report.averaging.failure)
        for old in sorted(self.rounds)[:-AVERAGING_EPOCHS]:
            del self.rounds[old]

    def averaging(self) -> list[tuple[int, int, int, list[tuple[str, int]]]]:
        """Per epoch, newest last: (epoch, volunteers, those whose round averaged, [(why not, how many)])."""
        shown = []
        for epoch in sorted(self.rounds):
            outcomes = self.rounds[epoch].values()
            reasons = Counter(o for o in outcomes if o).most_common()
            top = reasons[:MAX_REASONS] + ([("other", sum(n for _, n in reasons[MAX_REASONS:]))]
                                           if len(reasons) > MAX_REASONS else [])
            shown.append((epoch, len(outcomes), sum(1 for o in outcomes if not o), top))
        return shown

    def record_spread(self, epoch: int, num_peers: int, relative: float) -> None:
        if self.spread is None or epoch >= self.spread[0]:
            self.spread = (epoch, num_peers, relative)

    def samples_per_second(self) -> float:
        now = self.clock()
        while self.recent and self.recent[0][0] < now - RATE_WINDOW:
            self.recent.popleft()
        if len(self.recent) < 2:
            return 0.0
        span = max(now - self.recent[0][0], 1.0)
        return sum(samples for _, samples in self.recent) / span


def failure_kind(failure: str) -> str:
    """A failure as volunteers' reports word it, without what differs between peers (ids, addresses, reprs)."""
    text = re.sub(r"(\w+)\((['\"])(.*?)\2\)", r"\1: \3", failure)  # Error('message') -> Error: message
    text = re.sub(r"/\S+|\b\w{24,}\b|\d+(\.\d+)?", "…", text)  # addresses, peer ids, numbers
    text = re.split(r"[(\[<{]", text, maxsplit=1)[0].strip().rstrip(":")
    return text[:REASON_CHARS] or "no reason given"
