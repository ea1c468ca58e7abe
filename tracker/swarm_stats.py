"""The swarm's progress as the tracker sees it: epoch, throughput and loss from accepted reports, and
how far apart the volunteers' parameters lie, from the verifier, and how the verifier process is doing."""

from __future__ import annotations

import time
from collections import deque

from potluck.proto.report_pb2 import ContributionReport

RATE_WINDOW = 120.0  # seconds of reports that the throughput is averaged over


class SwarmStats:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.epoch = 0
        self.loss: float | None = None
        self.num_reports = 0
        self.recent: deque[tuple[float, int]] = deque()  # (arrival time, samples)
        self.losses_by_epoch: dict[int, tuple[float, int]] = {}  # epoch -> (sum of reports' mean losses, reports)
        self.spread: tuple[int, int, float] | None = None  # (epoch, volunteers compared, relative spread)
        self.verifier_health = None  # with a verifier: a callable returning its `VerifierHealth`

    def record(self, report: ContributionReport) -> None:
        now = self.clock()
        self.num_reports += 1
        self.epoch = max(self.epoch, report.epoch)
        self.recent.append((now, report.num_samples))
        if report.losses:
            total, count = self.losses_by_epoch.get(report.epoch, (0.0, 0))
            self.losses_by_epoch[report.epoch] = (total + sum(report.losses) / len(report.losses), count + 1)
            for old in [e for e in self.losses_by_epoch if e < self.epoch - 1]:
                del self.losses_by_epoch[old]
            total, count = self.losses_by_epoch[max(self.losses_by_epoch)]
            self.loss = total / count

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
