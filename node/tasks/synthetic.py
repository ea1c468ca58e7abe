"""`synthetic`: a small MLP learns a fixed random "teacher" network. No data files needed.

The teacher is derived from the swarm's data seed, inputs from the per-(account, epoch, step)
seed, both bit-exactly (hash output, not a torch RNG), so every peer and the verifier agree on
every sample. Learnable on a CPU in seconds: a useful smoke test for a swarm.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import nn

from potluck.node.tasks.base import TaskBase, derive_sample_seed, require_positive_int, uniform_floats


class SyntheticTask(TaskBase):
    """Regression onto a random two-layer tanh teacher (mean squared error)."""

    name = "synthetic"
    param_defaults = {
        "d_in": 16,
        "hidden": 128,
        "d_out": 4,
        "teacher_hidden": 32,
        "init_seed": 0,
    }

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self._teachers: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def _check_params(cls, params: dict[str, Any]) -> None:
        super()._check_params(params)
        for key in ("d_in", "hidden", "d_out", "teacher_hidden"):
            require_positive_int(params, key)

    def fresh_model(self) -> nn.Module:
        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p["init_seed"])
            return nn.Sequential(
                nn.Linear(p["d_in"], p["hidden"]),
                nn.Tanh(),
                nn.Linear(p["hidden"], p["hidden"]),
                nn.Tanh(),
                nn.Linear(p["hidden"], p["d_out"]),
            )

    def make_batch(
        self, data_seed: bytes, account_id: str, epoch: int, step: int, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        seed = derive_sample_seed(data_seed, account_id, epoch, step)
        inputs = uniform_floats(seed, (batch_size, self.params["d_in"]), label=b"synthetic/inputs")
        return inputs, self._teacher_outputs(data_seed, inputs)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        return nn.functional.mse_loss(model(inputs), targets)

    def tokens_per_sample(self) -> int:
        return 1

    def _teacher_outputs(self, data_seed: bytes, inputs: torch.Tensor) -> torch.Tensor:
        if data_seed not in self._teachers:
            p = self.params
            seed = hashlib.blake2b(b"potluck/v1/synthetic-teacher\x00" + data_seed, digest_size=32).digest()
            # Scales give pre-activations and outputs roughly unit variance (U[-1,1) has variance 1/3).
            w1 = uniform_floats(seed, (p["d_in"], p["teacher_hidden"]), label=b"w1")
            w2 = uniform_floats(seed, (p["teacher_hidden"], p["d_out"]), label=b"w2")
            w1 = w1 * (3 / math.sqrt(p["d_in"]))
            w2 = w2 * math.sqrt(7.5 / p["teacher_hidden"])
            self._teachers[data_seed] = (w1, w2)
        w1, w2 = self._teachers[data_seed]
        return torch.tanh(inputs @ w1) @ w2
