"""Stage (c): honest windows pass recomputation, made-up ones fail.

Honest windows are produced the way a node produces them, in another process with another torch
thread count; the verifier recomputes them here. The largest deviations seen are printed: they
are the measurement behind the tolerances in potluck.tracker.verifier.recompute.
"""

import os
import random

import pytest
import torch
from windowkit import node_windows

from potluck.errors import VerificationError
from potluck.node.tasks import get_task
from potluck.proto.report_pb2 import ContributionReport
from potluck.proto.wire import SKETCH_DIM, num_segments, segment_steps
from potluck.tracker.verifier.recompute import LOSS_RTOL, SKETCH_RTOL, compare, pick_segments, recompute

pytestmark = pytest.mark.timeout(300)

SEED = b"potluck recompute test seed"
ACCOUNT = "ab" * 32
NUM_WINDOWS, STEPS, BATCH = 50, 28, 32  # 28 micro-batches: segments of 8, 8, 8 and a short one of 4
CHECKS = NUM_WINDOWS * 4  # 200 recomputation checks, each of one segment

@pytest.fixture(scope="module")
def honest_windows():
    return node_windows('task = get_task("synthetic")', SEED, ACCOUNT, NUM_WINDOWS, STEPS, BATCH)


def report_of(window) -> ContributionReport:
    return ContributionReport(account_id=ACCOUNT, epoch=window["epoch"], batch_size=BATCH, losses=window["losses"],
                              num_samples=STEPS * BATCH, gradient_sketch=window["sketch"])


def model_at(window):
    model = get_task("synthetic").build_model()
    with torch.no_grad():
        for param, values in zip(model.parameters(), window["state"], strict=True):
            param.copy_(torch.tensor(values))
    return model


def check(window, report, segments=None):
    segments = segments if segments is not None else pick_segments(b"k" * 32, os.urandom(32), len(report.losses))
    recomputed = recompute(get_task("synthetic"), model_at(window), report, SEED, segments)
    compare(report, recomputed)
    return recomputed


def test_honest_windows_pass_every_check_and_the_margin_is_measured(honest_windows):
    torch.set_num_threads(1)
    failures, worst_loss, worst_sketch = 0, 0.0, 0.0
    for window in honest_windows:
        report = report_of(window)
        assert len(report.gradient_sketch) == SKETCH_DIM * num_segments(STEPS) == SKETCH_DIM * 4
        segments = pick_segments(b"k" * 32, os.urandom(32), STEPS)
        assert sorted(segments) == [0, 1, 2, 3]
        recomputed = recompute(get_task("synthetic"), model_at(window), report, SEED, segments)
        for step in range(STEPS):
            worst_loss = max(worst_loss, abs(recomputed.losses[step] - report.losses[step]) / abs(report.losses[step]))
        for segment in segments:
            claimed = torch.tensor(report.gradient_sketch[segment * SKETCH_DIM:(segment + 1) * SKETCH_DIM])
            actual = torch.tensor(recomputed.sketches[segment])
            worst_sketch = max(worst_sketch, ((claimed - actual).norm() / actual.norm()).item())
        try:
            compare(report, recomputed)
        except VerificationError:
            failures += 1
    print(f"\nhonest recomputation over {CHECKS} segment checks ({NUM_WINDOWS * STEPS} micro-batches): "
          f"worst loss deviation {worst_loss:.2e} (tolerance {LOSS_RTOL}), "
          f"worst sketch deviation {worst_sketch:.2e} (tolerance {SKETCH_RTOL}), "
          f"false failures {failures}/{NUM_WINDOWS} windows")
    assert failures == 0
    assert worst_loss < LOSS_RTOL / 10 and worst_sketch < SKETCH_RTOL / 10  # the margin is real


def test_made_up_losses_within_the_honest_range_fail(honest_windows):
    window = honest_windows[10]
    report = report_of(window)
    rng = random.Random(1)
    low, high = min(report.losses), max(report.losses)
    report.losses[:] = [rng.uniform(low, high) for _ in report.losses]
    with pytest.raises(VerificationError, match="claimed loss"):
        check(window, report)


def test_made_up_sketches_fail(honest_windows):
    window = honest_windows[10]
    report = report_of(window)
    rng = random.Random(2)
    scale = max(abs(v) for v in report.gradient_sketch)
    report.gradient_sketch[:] = [rng.uniform(-scale, scale) for _ in report.gradient_sketch]
    with pytest.raises(VerificationError, match="gradient sketch differs"):
        check(window, report)


def test_a_tripled_window_fails_when_a_padded_segment_is_drawn(honest_windows):
    window = honest_windows[10]
    report = report_of(window)
    # Claim three times the work: the extra micro-batches and segments repeat the real claims.
    report.losses[:] = list(report.losses) * 3
    report.gradient_sketch[:] = (list(report.gradient_sketch) * 3)[:SKETCH_DIM * num_segments(3 * STEPS)]
    padded = num_segments(STEPS) + 1
    assert segment_steps(padded, 3 * STEPS).start >= STEPS
    with pytest.raises(VerificationError):
        check(window, report, segments=[padded])


def test_one_made_up_micro_batch_fails_its_segment(honest_windows):
    window = honest_windows[10]
    report = report_of(window)
    report.losses[9] *= 1.5  # segment 1 holds micro-batches 8-15
    check(window, report, segments=[0, 2, 3])
    with pytest.raises(VerificationError, match="micro-batch 9"):
        check(window, report, segments=[1])


def test_picked_segments_are_distinct_keyed_and_in_range():
    digest = os.urandom(32)
    segments = pick_segments(b"k" * 32, digest, 800)  # 100 segments
    assert len(set(segments)) == 4 and all(0 <= s < 100 for s in segments)
    assert segments == pick_segments(b"k" * 32, digest, 800) != pick_segments(b"x" * 32, digest, 800)
    assert sorted(pick_segments(b"k" * 32, digest, 9)) == [0, 1]
