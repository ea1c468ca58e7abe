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
