"""How far apart the volunteers' parameters lie: shared averaging rounds keep them within a float rounding."""

from __future__ import annotations

import torch


def relative_spread(states: list[list[torch.Tensor]]) -> float:
    """The largest L2 distance of one state (a list of tensors) from the states' mean, relative to the
    mean's norm; one tensor at a time, so that it takes memory for one tensor of each state, not a model."""
    squared = torch.zeros(len(states), dtype=torch.float64)  # each state's squared distance from the mean
    mean_squared = torch.zeros((), dtype=torch.float64)
    for tensors in zip(*states, strict=True):
        if all(t is tensors[0] for t in tensors):  # states that share this tensor (the same snapshot)
            mean_squared += tensors[0].detach().double().square().sum()
            continue
        stacked = torch.stack([t.detach().double() for t in tensors])
        mean = stacked.mean(dim=0)
        squared += (stacked - mean).square().flatten(1).sum(dim=1)
        mean_squared += mean.square().sum()
    return float(squared.max().sqrt() / mean_squared.sqrt().clamp_min(1e-30))
