"""Stage (c) of verification: rebuild a window's micro-batches and recompute what the node claimed.

Given the model state a report started from (matched by its digest), the verifier regenerates
every micro-batch from (swarm seed, account, epoch, step), recomputes each loss and the gradient
sketch, and compares them with the claims within tolerances measured on honest nodes
(see `LOSS_RTOL` and `SKETCH_RTOL`, and tests/tracker/test_recompute.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from potluck.errors import VerificationError
from potluck.node.sketch import gradient_sketch, sketch_seed
from potluck.node.tasks.base import TaskBase
from potluck.proto.report_pb2 import ContributionReport

# The same code on the same device class reproduces losses to float32 rounding (~1e-7 relative);
# these bounds leave two orders of magnitude for other BLAS builds while a made-up loss, even one in
# the honest range, misses by far more.
LOSS_RTOL = 1e-3
LOSS_ATOL = 1e-5
# The sketch is a 64-dim projection of the mean gradient; honest recomputation agrees to ~1e-6.
SKETCH_RTOL = 1e-2


@dataclass(frozen=True)
class Recomputed:
    losses: list[float]
    sketch: list[float]


def recompute(task: TaskBase, model: torch.nn.Module, report: ContributionReport, data_seed: bytes) -> Recomputed:
    """Replay the window on `model` (which must hold the state the report started from)."""
    device = next(model.parameters()).device
    losses: list[float] = []
    grad_sums: list[torch.Tensor] | None = None
    for step in range(len(report.losses)):
        model.zero_grad(set_to_none=True)
        batch = task.batch_to(task.make_batch(data_seed, report.account_id, report.epoch, step, report.batch_size),
                              device)
        loss = task.loss(model, batch)
        loss.backward()
        losses.append(float(loss.detach()))
        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
            if grad_sums is None:
                grad_sums = [g.detach().clone() for g in grads]
            else:
                for total, grad in zip(grad_sums, grads, strict=True):
                    total.add_(grad)
    model.zero_grad(set_to_none=True)
    mean = [total / max(1, len(losses)) for total in grad_sums or ()]
    seed = sketch_seed(data_seed, report.account_id, report.epoch)
    return Recomputed(losses=losses, sketch=gradient_sketch(mean, seed, dim=len(report.gradient_sketch)))


def compare(report: ContributionReport, recomputed: Recomputed) -> None:
    """Raise `VerificationError` naming the first claim that recomputation does not support."""
    for step, (claimed, actual) in enumerate(zip(report.losses, recomputed.losses, strict=True)):
        if not abs(claimed - actual) <= LOSS_ATOL + LOSS_RTOL * abs(actual):
            raise VerificationError(f"micro-batch {step}: claimed loss {claimed:.6g}, recomputed {actual:.6g}")
    error = math.dist(report.gradient_sketch, recomputed.sketch)
    norm = math.hypot(*recomputed.sketch)
    if not error <= SKETCH_RTOL * norm + 1e-9:
        raise VerificationError(f"gradient sketch differs from the recomputed one by {error / max(norm, 1e-30):.3g} "
                                f"of its norm (tolerance {SKETCH_RTOL})")
