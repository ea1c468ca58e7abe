"""Stage (a): every report, before its ack. Envelopes are opened in worker processes (`OpeningPool`),
checked against their account (`ReportIntake`), and logged as grants in batches by one pump
(`Submissions`), which hands each grant on to verification.

Light on purpose: the report-opening workers import this package, and must not load torch or hivemind.
"""

from .opening_pool import OpeningPool, WorkerDied
from .rejected import Rejected
from .report_intake import RATE_BURST, RATE_PER_SECOND, ReportIntake
from .report_opener import Attestations, OpenedReport, ReportOpener, read_attestations
from .submissions import GrantSink, LoggedGrant, Submissions

__all__ = [
    "RATE_BURST",
    "RATE_PER_SECOND",
    "Attestations",
    "GrantSink",
    "LoggedGrant",
    "OpenedReport",
    "OpeningPool",
    "Rejected",
    "ReportIntake",
    "ReportOpener",
    "Submissions",
    "WorkerDied",
    "read_attestations",
]
