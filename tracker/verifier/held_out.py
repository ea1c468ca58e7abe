"""The swarm's held-out loss: the model the verifier follows, evaluated on the manifest's "eval"
shards (the text `data prepare` held out, never trained on) every EVAL_EVERY epochs.

The same EVAL_WINDOWS windows every time (drawn once, by keyed hash from the swarm's seed), so one
evaluation compares with the next. It costs one forward pass over them, on the verifier's CPU.
"""

from __future__ import annotations

import torch

from potluck.node.tasks import get_task

EVAL_EVERY = 2  # epochs between evaluations (the first state the verifier loads at or past each multiple)
EVAL_WINDOWS = 64
EVAL_BATCH = 16
_ACCOUNT = "held-out"  # no account's: the windows a node trains on are drawn under its own account id


class HeldOut:
    def __init__(self, task_name: str, task_params: dict, eval_shards, data_seed: bytes):
        self.task = get_task(task_name, task_params, shards=eval_shards)
        self.batches = [self.task.make_batch(data_seed, _ACCOUNT, 0, step, EVAL_BATCH)
                        for step in range(EVAL_WINDOWS // EVAL_BATCH)]
        self.last_epoch = -EVAL_EVERY

    def due(self, epoch: int) -> bool:
        return epoch // EVAL_EVERY > self.last_epoch // EVAL_EVERY

    def loss(self, model: torch.nn.Module, epoch: int) -> float:
        """Mean loss of `model` over the held-out windows (the model is left as it was)."""
        self.last_epoch = epoch
        with torch.no_grad():
            return sum(self.task.loss(model, batch).item() for batch in self.batches) / len(self.batches)
