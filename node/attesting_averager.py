"""A hivemind GradientAverager whose every round carries our attestation and remembers who answered.

hivemind's all-reduce rounds can all-gather a small payload: `schedule_step(gather=...)`, and a
finished round's `StepControl.result()` maps each groupmate's PeerID to what it gathered. The
Optimizer schedules gradient rounds itself (`schedule_step(timeout=...)`, or `step(control=None)`
when nothing was pre-scheduled), so this subclass fills in `gather=` for every round and tags the
round with the epoch it belongs to. The worker asks `round_outcome(epoch)` after the epoch ends.

It also accumulates micro-batch gradients in two stages, so the worker can sketch each segment's
exact sum: a segment buffer, folded into hivemind's accumulators when the worker has sketched it
(and always before the accumulators are averaged, loaded or reset). One fused add per micro-batch
replaces hivemind's add per parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from hivemind.averaging.control import StepControl
from hivemind.optim.grad_averager import GradientAverager

logger = logging.getLogger(__name__)

_EPOCH_ATTRIBUTE = "potluck_epoch"


@dataclass(frozen=True, kw_only=True)
class AveragingOutcome:
    """How the gradient round that closed one epoch went."""

    epoch: int
    succeeded: bool
    # Groupmates other than us: PeerID (base58) -> the bytes they gathered (None if not bytes).
    groupmates: dict[str, bytes | None]
    error: str | None


class AttestingGradientAverager(GradientAverager):
    """GradientAverager that sends `payload_for_round()` = (epoch, bytes) with every round.

    Pass it to hivemind.Optimizer as
    `grad_averager_factory=functools.partial(AttestingGradientAverager, payload_for_round=...)`.
    """

    def __init__(
        self,
        parameters: Iterable[torch.nn.Parameter],
        *,
        payload_for_round: Callable[[], tuple[int, bytes]],
        **kwargs,
    ) -> None:
        if kwargs.get("reuse_grad_buffers"):
            raise ValueError("AttestingGradientAverager accumulates gradients itself: no reuse_grad_buffers")
        # Set before super().__init__, which forks the averager's background process.
        self._payload_for_round = payload_for_round
        self._last_scheduled: StepControl | None = None
        self._last_stepped: StepControl | None = None
        super().__init__(parameters, **kwargs)
        self._segment = [torch.zeros_like(accumulator) for accumulator in self._grad_accumulators()]

    @torch.no_grad()
    def accumulate_grads_(self, batch_size: int) -> None:
        """Add the current gradients to the segment buffer (hivemind's own method adds them to its accumulators)."""
        if self._anchor_batch_size is None:
            self._anchor_batch_size = batch_size  # as hivemind: later batches are scaled to the first one's size
        self.local_samples_accumulated += batch_size
        self.local_times_accumulated += 1
        grads = [grad.to(buffer.device) for grad, buffer in zip(self._grads_from_parameters(), self._segment,
                                                                 strict=True)]
        torch._foreach_add_(self._segment, grads, alpha=float(batch_size) / self._anchor_batch_size)

    def segment_sum(self) -> list[torch.Tensor]:
        """The gradients accumulated since the last fold, one tensor per parameter."""
        return self._segment

    @torch.no_grad()
    def fold_segment(self) -> None:
        """Move the segment's sum into hivemind's accumulators and start a new segment."""
        torch._foreach_add_(list(self._grad_accumulators()), self._segment)
        torch._foreach_zero_(self._segment)

    def load_accumulators_into_averager_(self) -> None:
        self.fold_segment()
        super().load_accumulators_into_averager_()

    def reset_accumulated_grads_(self) -> None:
        super().reset_accumulated_grads_()
        torch._foreach_zero_(self._segment)

    def schedule_step(self, scheduled_time: float | None = None, **kwargs) -> StepControl:
        epoch = None
        if kwargs.get("gather") is None:
            epoch, payload = self._payload_for_round()
            if not isinstance(payload, bytes):
                raise TypeError(f"the gather payload must be bytes, got {type(payload).__name__}")
            kwargs["gather"] = payload
        control = super().schedule_step(scheduled_time, **kwargs)
        setattr(control, _EPOCH_ATTRIBUTE, epoch)
        self._last_scheduled = control
        return control

    def step(
        self,
        weight: float | None = None,
        reset_accumulators: bool = True,
        control: StepControl | None = None,
        timeout: float | None = None,
        wait: bool = True,
        **kwargs,
    ):
        if control is None:
            # Schedule here (not in super().step) so the round goes through our schedule_step.
            control = self.schedule_step(timeout=timeout, **kwargs)
            kwargs = {}
        self._last_stepped = control
        return super().step(
            weight=weight, reset_accumulators=reset_accumulators, control=control, timeout=timeout, wait=wait, **kwargs
        )

    def round_outcome(self, epoch: int) -> AveragingOutcome:
        """What happened to the gradient round of `epoch`; call after the Optimizer has left that epoch."""
        control = self._last_stepped
        if control is None or getattr(control, _EPOCH_ATTRIBUTE, None) != epoch:
            # hivemind started no round for this epoch. Either it saw no other peers (and cancelled the
            # pre-scheduled matchmaking, if any), or the pre-scheduled matchmaking had already failed.
            scheduled = self._last_scheduled
            failed_matchmaking = (
                scheduled is not None
                and getattr(scheduled, _EPOCH_ATTRIBUTE, None) == epoch
                and scheduled.done()
                and not scheduled.cancelled()
                and scheduled.exception() is not None
            )
            if failed_matchmaking:
                return _failed(epoch, f"matchmaking failed: {scheduled.exception()!r}")
            return _failed(epoch, "no averaging round: no other peers were training")
        if not control.done():
            return _failed(epoch, "averaging round still running after averaging_timeout")
        if control.cancelled():
            return _failed(epoch, "averaging round was cancelled")
        if control.exception() is not None:
            return _failed(epoch, f"averaging round failed: {control.exception()!r}")
        own_peer_id = self.peer_id
        groupmates = {
            peer_id.to_base58(): payload if isinstance(payload, bytes) else None
            for peer_id, payload in control.result().items()
            if peer_id != own_peer_id
        }
        return AveragingOutcome(epoch=epoch, succeeded=True, groupmates=groupmates, error=None)


def _failed(epoch: int, error: str) -> AveragingOutcome:
    return AveragingOutcome(epoch=epoch, succeeded=False, groupmates={}, error=error)
