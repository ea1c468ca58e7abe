"""Stage (c) of verification: rebuild a few claimed micro-batches and recompute what the node claimed.

Given the model state a report started from (matched by its digest), the verifier regenerates the
chosen micro-batches from (swarm seed, account, epoch, step), recomputes each one's loss and
gradient sketch, and compares them with the claims within tolerances measured on honest nodes
(`LOSS_RTOL`, `SKETCH_RTOL`; see tests/tracker/test_recompute.py). Which micro-batches are
checked is drawn with the tracker's key, so a node cannot know which ones it may fake.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

import torch

from potluck.errors import VerificationError
from potluck.node.sketch import SketchProjector, sketch_seed
from potluck.node.tasks.base import TaskBase
from potluck.proto.report_pb2 import ContributionReport

# The same code on the same device class reproduces losses to float32 rounding (~1e-7 relative);
# these bounds leave two orders of magnitude for other BLAS builds and thread counts, while a
# made-up loss, even one in the honest range, misses by far more.
LOSS_RTOL = 1e-3
LOSS_ATOL = 1e-5
# A micro-batch's sketch recomputed on the same state agrees to ~1e-6 of its norm.
SKETCH_RTOL = 1e-2
STEPS_PER_CHECK = 4  # micro-batches recomputed for a sampled report
STEPS_ON_SUSPICION = 8  # ... and for one whose claims the peer's own progress record contradicts


@dataclass(frozen=True)
class Recomputed:
    losses: dict[int, float]
    sketches: dict[int, list[float]]


def pick_steps(check_key: bytes, report_sha256: bytes, num_steps: int, count: int = STEPS_PER_CHECK) -> list[int]:
    """The micro-batches to recompute: distinct, drawn with the tracker's key from the report's hash.

    Any prefix of the list is itself such a draw, so a check can take as many as it needs.
    """
    chosen: list[int] = []
    counter = 0
    while len(chosen) < min(count, num_steps):
        digest = hmac.new(check_key, b"potluck/check-steps/v1\n" + report_sha256 + counter.to_bytes(4, "big"),
                          hashlib.sha256).digest()
        step = int.from_bytes(digest[:8], "big") % num_steps
        if step not in chosen:
            chosen.append(step)
        counter += 1
    return chosen


def recompute(task: TaskBase, model: torch.nn.Module, report: ContributionReport, data_seed: bytes,
              steps: list[int]) -> Recomputed:
    """Replay micro-batches `steps` of the window on `model` (holding the state the report started from)."""
    device = next(model.parameters()).device
    dim = len(report.gradient_sketch) // max(1, len(report.losses))
    projector = SketchProjector(sketch_seed(data_seed, report.account_id, report.epoch), dim)
    losses, sketches = {}, {}
    for step in steps:
        model.zero_grad(set_to_none=True)
        batch = task.batch_to(task.make_batch(data_seed, report.account_id, report.epoch, step, report.batch_size),
                              device)
        loss = task.loss(model, batch)
        loss.backward()
        losses[step] = float(loss.detach())
        sketches[step] = projector.sketch(model)
    model.zero_grad(set_to_none=True)
    return Recomputed(losses=losses, sketches=sketches)


def compare(report: ContributionReport, recomputed: Recomputed) -> None:
    """Raise `VerificationError` naming the first claim that recomputation does not support."""
    dim = len(report.gradient_sketch) // max(1, len(report.losses))
    for step, actual in recomputed.losses.items():
        claimed = report.losses[step]
        if not abs(claimed - actual) <= LOSS_ATOL + LOSS_RTOL * abs(actual):
            raise VerificationError(f"micro-batch {step}: claimed loss {claimed:.6g}, recomputed {actual:.6g}")
        sketch = recomputed.sketches[step]
        error = math.dist(report.gradient_sketch[step * dim:(step + 1) * dim], sketch)
        norm = math.hypot(*sketch)
        if not error <= SKETCH_RTOL * norm + 1e-12:
            raise VerificationError(f"micro-batch {step}: gradient sketch differs from the recomputed one by "
                                    f"{error / max(norm, 1e-30):.3g} of its norm (tolerance {SKETCH_RTOL})")
