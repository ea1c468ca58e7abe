"""The spread the verifier reports for the volunteers' starting states: zero when they share one state,
and the largest distance from their mean, relative to its norm, when they do not."""

from __future__ import annotations

import math

import pytest
import torch

from potluck.tracker.verifier import relative_spread

pytestmark = pytest.mark.timeout(30)


def test_volunteers_sharing_one_state_have_no_spread():
    state = {"weight": torch.randn(3, 4), "bias": torch.randn(4)}
    assert relative_spread([state, state, state]) == 0.0


def test_spread_is_the_farthest_state_from_the_mean_over_the_mean_norm():
    a = {"weight": torch.ones(2, 2), "bias": torch.zeros(1)}
    b = {"weight": torch.ones(2, 2), "bias": torch.zeros(1)}
    c = {"weight": torch.ones(2, 2) * 4, "bias": torch.zeros(1)}
    # mean: 2 everywhere in the weight (norm 4); c is 2 away in 4 elements (distance 4), a and b 1 (distance 2)
    assert math.isclose(relative_spread([a, b, c]), 4 / 4)


def test_a_rounding_apart_is_far_below_one_optimizer_step_apart():
    torch.manual_seed(0)
    state = {"weight": torch.randn(64, 64)}
    rounding = {"weight": state["weight"].nextafter(torch.tensor(math.inf))}  # one ulp up, every element
    stepped = {"weight": state["weight"] - 1e-2 * torch.sign(torch.randn(64, 64))}  # one Adam step at lr 0.01
    assert relative_spread([state, rounding]) < 1e-7 < 1e-3 < relative_spread([state, stepped])
