"""Stages (b) and (c): the verifier, a hivemind peer of its own that follows the swarm's model, checks
each report against the peer's own progress record and recomputes drawn segments of sampled ones
(`run_verifier`, in its own process); and the tracker's side of it (`Verification`), which queues
the checks and hands the verdicts to the credit policy."""

from .checkpoint_keeper import CheckpointKeeper
from .messages import Job, Spread, VerifierReady, VerifierSpec
from .progress_book import FLAGRANT_OVERCLAIM_FACTOR, OVERCLAIM_FACTOR, ProgressBook
from .recompute import LOSS_ATOL, LOSS_RTOL, SEGMENTS_PER_CHECK, SKETCH_RTOL, compare, pick_segments, recompute
from .spread import relative_spread
from .state_fetcher import StateFetcher
from .verification import Verification, check_attestations
from .verifier import run_verifier

__all__ = [
    "FLAGRANT_OVERCLAIM_FACTOR",
    "LOSS_ATOL",
    "LOSS_RTOL",
    "OVERCLAIM_FACTOR",
    "SEGMENTS_PER_CHECK",
    "SKETCH_RTOL",
    "CheckpointKeeper",
    "Job",
    "ProgressBook",
    "Spread",
    "StateFetcher",
    "Verification",
    "VerifierReady",
    "VerifierSpec",
    "check_attestations",
    "compare",
    "pick_segments",
    "recompute",
    "relative_spread",
    "run_verifier",
]
