"""The deterrence condition (tracker/credit/deterrence.py): its arithmetic, and who refuses a policy that breaks it."""

import itertools

import pytest

from potluck.errors import ConfigError
from potluck.proto.manifest_pb2 import CreditPolicy
from potluck.tracker.credit.deterrence import DETECTION, check_deterrence, deters, least_escrow_depth

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(("rate", "depth"), [(1.0, 3), (0.5, 4), (0.25, 6), (0.1, 12), (0.001, 1054)])
def test_the_least_escrow_depth_is_one_over_rate_times_detection(rate, depth):
    assert least_escrow_depth(rate) == depth
    assert (depth - 1) * rate * DETECTION >= 1 > (depth - 2) * rate * DETECTION


def test_where_condition_1_holds_no_share_of_made_up_work_gains_in_expectation():
    # The bound of the docstring, on a grid: caught with probability p = s x DETECTION x f (at least), a cheat
    # gains f x c undetected and loses the collateral when caught.
    claim = 1000
    for rate, share in itertools.product([0.001, 0.01, 0.1, 0.2, 0.5, 1.0], [1e-3, 0.01, 0.1, 0.5, 0.9, 1.0]):
        collateral = -(-claim // (rate * DETECTION))  # the least that (1) accepts
        assert deters(int(collateral), claim, rate)
        caught = rate * DETECTION * share
        assert (1 - caught) * share * claim - caught * collateral <= 1e-9, (rate, share)
    assert not deters(int(claim / (0.1 * DETECTION)) - 1, claim, 0.1)


def test_a_tracker_refuses_a_signed_policy_that_breaks_it_naming_the_key_and_the_bound():
    check_deterrence(CreditPolicy(sampling_rate=0.25, escrow_depth=6))
    with pytest.raises(ConfigError, match=r"credits.escrow_depth 3 must be at least 6 at sampling_rate 0.25"):
        check_deterrence(CreditPolicy(sampling_rate=0.25, escrow_depth=3))


def test_a_data_share_raises_the_bounds_an_accomplice_owner_could_gain_it_too():
    # Undetected, a made-up report also pays the text's owners up to data_share of its claim: a cheat that
    # owns text (or has an accomplice who does) gains (1 + d) x f x c, so the collateral must cover that.
    claim, ppm = 1000, 500_000
    for rate, share in itertools.product([0.01, 0.1, 0.5, 1.0], [0.01, 0.5, 1.0]):
        collateral = -(-claim * (1 + ppm / 1e6) // (rate * DETECTION))
        assert deters(int(collateral), claim, rate, ppm)
        assert not deters(int(collateral) - 2, claim, rate, ppm)
        caught = rate * DETECTION * share
        assert (1 - caught) * share * claim * 1.5 - caught * collateral <= 1e-9, (rate, share)
    assert least_escrow_depth(0.25, 100_000) == 6 and least_escrow_depth(0.25, 500_000) == 8
    check_deterrence(CreditPolicy(sampling_rate=0.25, escrow_depth=8, data_share_ppm=500_000))
    with pytest.raises(ConfigError, match=r"must be at least 8 at sampling_rate 0.25 and data_share 0.5"):
        check_deterrence(CreditPolicy(sampling_rate=0.25, escrow_depth=6, data_share_ppm=500_000))
