"""What `swarm status` says about averaging (tracker/swarm_stats.py), and what a node's status line
says when its rounds keep failing (node/status_display.py). Across real hosts: tests/e2e/test_nat.py."""

from __future__ import annotations

from potluck.node.status_display import averaging_advice
from potluck.proto.report_pb2 import AveragingRound, ContributionReport
from potluck.tracker.swarm_stats import AVERAGING_EPOCHS, MAX_REASONS, SwarmStats


def report(account: str, epoch: int, failure: str = "") -> ContributionReport:
    return ContributionReport(account_id=account, epoch=epoch,
                              averaging=AveragingRound(succeeded=not failure, failure=failure))


def test_each_epoch_shows_the_share_that_averaged_and_why_the_others_did_not():
    stats = SwarmStats()
    stats.record(report("a", 0))
    stats.record(report("b", 0, "averaging round failed: AllreduceException('Could not find a group')"))
    stats.record(report("c", 0, "averaging round failed: AllreduceException('Could not find a group')"))
    stats.record(report("d", 0, "matchmaking failed: TimeoutError() after 12.5s from QmYiBGrPciC1mynmV8TFAG5qX"))
    assert stats.averaging() == [(0, 4, 1, [("averaging round failed: AllreduceException: Could not find a group", 2),
                                            ("matchmaking failed: TimeoutError", 1)])]


def test_a_volunteer_counts_once_an_epoch_and_as_averaged_if_any_of_its_rounds_did():
    stats = SwarmStats()
    stats.record(report("a", 3, "no averaging round: no other peers were training"))
    stats.record(report("a", 3))
    stats.record(report("a", 3, "no averaging round: no other peers were training"))
    assert stats.averaging() == [(3, 1, 1, [])]


def test_what_is_kept_is_bounded_whatever_reports_say():
    stats = SwarmStats()
    for epoch in range(3 * AVERAGING_EPOCHS):
        for k in range(10):  # ten distinct made-up reasons an epoch
            stats.record(report(f"acct{k}", epoch, f"reason {chr(97 + k) * 3} " + "x" * 500))
    shown = stats.averaging()
    assert [e for e, *_ in shown] == list(range(2 * AVERAGING_EPOCHS, 3 * AVERAGING_EPOCHS))
    for _, volunteers, averaged, failures in shown:
        assert (volunteers, averaged) == (10, 0)
        assert len(failures) == MAX_REASONS + 1 and failures[-1] == ("other", 10 - MAX_REASONS)
        assert all(len(reason) <= 80 for reason, _ in failures)
    stats.record(report("late", 0))  # an epoch too old to show is not brought back
    assert [e for e, *_ in stats.averaging()][0] == 2 * AVERAGING_EPOCHS


def test_a_node_says_what_to_do_only_once_its_rounds_keep_failing():
    failure = "averaging round failed: AllreduceException('Could not find a group')"
    assert averaging_advice(2, failure, client_mode=False) == ""
    advice = averaging_advice(3, failure, client_mode=False)
    assert advice.startswith("failed 3 rounds in a row (averaging round failed") and "--client-mode" in advice
    assert "--aux-port" in averaging_advice(5, failure, client_mode=True)
    assert "your work still counts" in averaging_advice(3, "no averaging round: no other peers were training", False)
