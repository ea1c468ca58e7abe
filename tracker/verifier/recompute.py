"""Stage (c) of verification: rebuild a few claimed segments of micro-batches and recompute what the node claimed.

Given the model state a report started from (matched by its digest), the verifier regenerates the
micro-batches of the chosen segments from (swarm seed, account, epoch, step), recomputes each one's
loss and each segment's gradient sketch, and compares them with the claims within tolerances
measured on honest nodes (`LOSS_RTOL`, `SKETCH_RTOL`; see tests/tracker/test_recompute.py). Which
segments are checked is drawn with the tracker's key, so a node cannot know which ones it may fake.
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
from potluck.proto.wire import SKETCH_DIM, num_segments, segment_steps

# The same code on the same device class reproduces losses to float32 rounding (~1e-7 relative);
# these bounds leave two orders of magnitude for other BLAS builds and thread counts, while a
# made-up loss, even one in the honest range, misses by far more.
LOSS_RTOL = 1e-3
LOSS_ATOL = 1e-5
# A segment's sketch recomputed on the same state agrees to ~1e-5 of its norm.
SKETCH_RTOL = 1e-2
SEGMENTS_PER_CHECK = 4  # segments recomputed for a sampled report
SEGMENTS_ON_SUSPICION = 8  # ... and for one whose claims the peer's own progress record contradicts


@dataclass(frozen=True)
class Recomputed:
    losses: dict[int, float]  # micro-batch -> loss
    sketches: dict[int, list[float]]  # segment -> sketch of its summed gradient


def pick_segments(check_key: bytes, report_sha256: bytes, num_steps: int,
                  count: int = SEGMENTS_PER_CHECK) -> list[int]:
    """The segments to recompute: distinct, drawn with the tracker's key from the report's hash.

    Any prefix of the list is itself such a draw, so a check can take as many as it needs.
    """
    total = num_segments(num_steps)
    chosen: list[int] = []
    counter = 0
    while len(chosen) < min(count, total):
        digest = hmac.new(check_key, b"potluck/check-segments/v1\n" + report_sha256 + counter.to_bytes(4, "big"),
                          hashlib.sha256).digest()
        segment = int.from_bytes(digest[:8], "big") % total
        if segment not in chosen:
            chosen.append(segment)
        counter += 1
    return chosen


def recompute(task: TaskBase, model: torch.nn.Module, report: ContributionReport, data_seed: bytes,
              segments: list[int]) -> Recomputed:
    """Replay `segments` of the window on `model` (holding the state the report started from)."""
    device = next(model.parameters()).device
    projector = SketchProjector(sketch_seed(data_seed, report.account_id, report.epoch), SKETCH_DIM)
    losses, sketches = {}, {}
    for segment in segments:
        model.zero_grad(set_to_none=True)
        for step in segment_steps(segment, len(report.losses)):
            batch = task.make_batch(data_seed, report.account_id, report.epoch, step, report.batch_size)
            loss = task.loss(model, task.batch_to(batch, device))
            loss.backward()  # gradients add up over the segment, as they do on the node
            losses[step] = float(loss.detach())
        sketches[segment] = projector.sketch(model)
    model.zero_grad(set_to_none=True)
    return Recomputed(losses=losses, sketches=sketches)


def compare(report: ContributionReport, recomputed: Recomputed) -> None:
    """Raise `VerificationError` naming the first claim that recomputation does not support."""
    for step, actual in recomputed.losses.items():
        claimed = report.losses[step]
        if not abs(claimed - actual) <= LOSS_ATOL + LOSS_RTOL * abs(actual):
            raise VerificationError(f"micro-batch {step}: claimed loss {claimed:.6g}, recomputed {actual:.6g}")
    for segment, sketch in recomputed.sketches.items():
        claimed = report.gradient_sketch[segment * SKETCH_DIM:(segment + 1) * SKETCH_DIM]
        error = math.dist(claimed, sketch)
        norm = math.hypot(*sketch)
        if not error <= SKETCH_RTOL * norm + 1e-12:
            steps = segment_steps(segment, len(report.losses))
            raise VerificationError(f"segment {segment} (micro-batches {steps.start}-{steps.stop - 1}): gradient "
                                    f"sketch differs from the recomputed one by "
                                    f"{error / max(norm, 1e-30):.3g} of its norm (tolerance {SKETCH_RTOL})")
