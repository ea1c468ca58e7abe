"""Stage (b)'s reading of a peer's own hivemind progress record against its claim."""

import pytest

from potluck.proto.report_pb2 import ContributionReport
from potluck.tracker.verifier import FLAGRANT_OVERCLAIM_FACTOR, ProgressBook

pytestmark = pytest.mark.timeout(10)

PEER, BATCH = "12D3KooWpeer", 32


def claim(micro_batches: int, epoch: int = 4) -> ContributionReport:
    return ContributionReport(peer_id=PEER, epoch=epoch, batch_size=BATCH, num_samples=micro_batches * BATCH)


def book(seen_micro_batches: int, epoch: int = 4) -> ProgressBook:
    progress = ProgressBook()
    progress.samples[(PEER, epoch)] = seen_micro_batches * BATCH
    return progress


@pytest.mark.parametrize(("trained", "claimed"), [(1, 3), (2, 6), (100, 300)])
def test_a_tripled_window_is_suspected_however_short(trained, claimed):
    assert "progress record showed at most" in book(trained).suspicion(claim(claimed))


@pytest.mark.parametrize(("seen", "claimed"), [(1, 1), (1, 2), (50, 100), (99, 100)])
def test_a_record_that_lags_the_last_steps_is_no_suspicion(seen, claimed):
    assert book(seen).suspicion(claim(claimed)) is None


def test_no_record_for_the_epoch_is_no_evidence():
    assert book(10, epoch=3).suspicion(claim(300, epoch=4)) is None


def test_only_a_claim_far_beyond_the_record_is_flagrant():
    # Without a state to recompute on, a claim fails on the record alone only past 2.5x and a micro-batch.
    flagrant = {"factor": FLAGRANT_OVERCLAIM_FACTOR, "slack": BATCH}
    assert book(1).suspicion(claim(3), **flagrant) is None
    assert book(2).suspicion(claim(6), **flagrant) is None
    assert book(10).suspicion(claim(30), **flagrant) is not None
