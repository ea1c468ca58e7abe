"""The spread the verifier reports for the volunteers' starting parameters: nothing when they agree, and
the largest distance from their mean, relative to its norm, when they do not."""

from __future__ import annotations

import math

import pytest
import torch

from potluck.tracker.verifier import relative_spread

pytestmark = pytest.mark.timeout(30)


def test_equal_states_have_no_spread():
    state = [torch.randn(3, 4), torch.randn(4)]
    copies = [[t.clone() for t in state] for _ in range(3)]
    assert relative_spread(copies) < 1e-15  # float64 arithmetic on equal values: a rounding at most
    assert relative_spread([state, state]) == 0.0  # one snapshot twice (two peers announced the same digest)


def test_spread_is_the_farthest_state_from_the_mean_over_the_mean_norm():
    a = [torch.ones(2, 2), torch.zeros(1)]
    b = [torch.ones(2, 2), torch.zeros(1)]
    c = [torch.ones(2, 2) * 4, torch.zeros(1)]
    # mean: 2 everywhere in the first tensor (norm 4); c is 2 away in 4 elements (distance 4), a and b 1 (distance 2)
    assert math.isclose(relative_spread([a, b, c]), 4 / 4)
    assert math.isclose(relative_spread([a, c]), 3 / 5)  # mean 2.5 (norm 5); both 1.5 away in 4 elements: 3


def test_a_rounding_apart_is_small_and_an_optimizer_step_apart_is_not():
    torch.manual_seed(0)
    state = [torch.randn(64, 64)]
    rounding = [state[0].nextafter(torch.tensor(math.inf))]  # one ulp up, every element
    stepped = [state[0] - 1e-2 * torch.sign(torch.randn(64, 64))]  # one Adam step at lr 0.01
    assert relative_spread([state, rounding]) < 1e-7
    assert relative_spread([state, stepped]) > 1e-3
