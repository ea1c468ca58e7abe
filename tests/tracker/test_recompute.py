"""Stage (c): honest windows pass recomputation, made-up ones fail.

Honest windows are produced the way a node produces them, in another process with another torch
thread count; the verifier recomputes them here. The largest deviations seen are printed: they
are the measurement behind the tolerances in potluck.tracker.recompute.
"""

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest
import torch

from potluck.errors import VerificationError
from potluck.node.sketch import SKETCH_DIM
from potluck.node.tasks import get_task
from potluck.proto.report_pb2 import ContributionReport
from potluck.tracker.recompute import LOSS_RTOL, SKETCH_RTOL, compare, pick_steps, recompute

pytestmark = pytest.mark.timeout(300)

SEED = b"potluck recompute test seed"
ACCOUNT = "ab" * 32
NUM_WINDOWS, STEPS, BATCH = 50, 16, 32
CHECKS = NUM_WINDOWS * 4  # 200 recomputation checks of 4 micro-batches each

# A node's side: train windows with a real optimizer and record what a report claims.
NODE = textwrap.dedent(f"""
    import json, sys, torch
    from potluck.node.sketch import SketchProjector, sketch_seed, SKETCH_DIM
    from potluck.node.tasks import get_task
    torch.set_num_threads(2)
    task = get_task("synthetic")
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    windows = []
    for epoch in range({NUM_WINDOWS}):
        state = [p.detach().clone().tolist() for p in model.parameters()]
        projector = SketchProjector(sketch_seed({SEED!r}, {ACCOUNT!r}, epoch), SKETCH_DIM)
        losses, sketches = [], []
        for step in range({STEPS}):
            model.zero_grad()
            loss = task.loss(model, task.make_batch({SEED!r}, {ACCOUNT!r}, epoch, step, {BATCH}))
            loss.backward()
            losses.append(loss.item())
            sketches += projector.sketch(model)
        optimizer.step()  # the swarm's update between windows
        windows.append(dict(epoch=epoch, state=state, losses=losses, sketch=sketches))
    json.dump(windows, sys.stdout)
""")


@pytest.fixture(scope="module")
def honest_windows():
    out = subprocess.run([sys.executable, "-c", NODE], capture_output=True, text=True, check=True, timeout=240)
    return json.loads(out.stdout)


def report_of(window) -> ContributionReport:
    return ContributionReport(account_id=ACCOUNT, epoch=window["epoch"], batch_size=BATCH, losses=window["losses"],
                              num_samples=STEPS * BATCH, gradient_sketch=window["sketch"])


def model_at(window):
    model = get_task("synthetic").build_model()
    with torch.no_grad():
        for param, values in zip(model.parameters(), window["state"], strict=True):
            param.copy_(torch.tensor(values))
    return model


def check(window, report, steps=None):
    steps = steps if steps is not None else pick_steps(b"k" * 32, os.urandom(32), len(report.losses))
    recomputed = recompute(get_task("synthetic"), model_at(window), report, SEED, steps)
    compare(report, recomputed)
    return recomputed


def test_honest_windows_pass_every_check_and_the_margin_is_measured(honest_windows):
    torch.set_num_threads(1)
    failures, worst_loss, worst_sketch = 0, 0.0, 0.0
    for window in honest_windows:
        report = report_of(window)
        steps = pick_steps(b"k" * 32, os.urandom(32), STEPS)
        recomputed = recompute(get_task("synthetic"), model_at(window), report, SEED, steps)
        for step in steps:
            worst_loss = max(worst_loss, abs(recomputed.losses[step] - report.losses[step]) / abs(report.losses[step]))
            claimed = torch.tensor(report.gradient_sketch[step * SKETCH_DIM:(step + 1) * SKETCH_DIM])
            actual = torch.tensor(recomputed.sketches[step])
            worst_sketch = max(worst_sketch, ((claimed - actual).norm() / actual.norm()).item())
        try:
            compare(report, recomputed)
        except VerificationError:
            failures += 1
    print(f"\nhonest recomputation over {CHECKS} micro-batch checks: worst loss deviation {worst_loss:.2e} "
          f"(tolerance {LOSS_RTOL}), worst sketch deviation {worst_sketch:.2e} (tolerance {SKETCH_RTOL}), "
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


def test_a_tripled_window_fails_when_a_padded_micro_batch_is_drawn(honest_windows):
    window = honest_windows[10]
    report = report_of(window)
    # Claim three times the work: the extra micro-batches repeat the real claims.
    report.losses[:] = list(report.losses) * 3
    report.gradient_sketch[:] = list(report.gradient_sketch) * 3
    with pytest.raises(VerificationError):
        check(window, report, steps=[STEPS + 1])


def test_picked_steps_are_distinct_keyed_and_in_range():
    digest = os.urandom(32)
    steps = pick_steps(b"k" * 32, digest, 100)
    assert len(set(steps)) == 4 and all(0 <= s < 100 for s in steps)
    assert steps == pick_steps(b"k" * 32, digest, 100) != pick_steps(b"x" * 32, digest, 100)
    assert sorted(pick_steps(b"k" * 32, digest, 2)) == [0, 1]
