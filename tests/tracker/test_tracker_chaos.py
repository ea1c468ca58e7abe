"""The tracker SIGKILLed at random moments under a steady load, and restarted on the same state dir.

All real processes: `potluck tracker serve`, volunteers each with the node's Outbox and Reporter,
`potluck audit verify` after every restart. Shows what a lead's crash must never cost: an
acknowledged report (the node deleted nothing, but its receipt would prove an entry the log lost),
a report logged twice, a log an auditor finds inconsistent with what it saw before, or a queue that
stays stuck after the tracker is back. The seed is printed; POTLUCK_CHAOS_SEED replays a run.
"""

import os
import random
import time

import pytest
from chaoskit import ChaosSwarm
from proctree import descendant_pids

pytestmark = pytest.mark.timeout(300)  # about 50 s on quiet cores: a bound for a stuck run, not a slow machine

KILLS = 10
VOLUNTEERS = 3
INTERVAL = 0.6  # seconds between a volunteer's reports: 5 reports/s in all, within each account's rate


def test_sigkilled_tracker_loses_no_acknowledged_report(tmp_path):
    seed = int(os.environ.get("POTLUCK_CHAOS_SEED", random.randrange(2**32)))
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    swarm = ChaosSwarm(tmp_path)
    try:
        swarm.start_volunteers(VOLUNTEERS, INTERVAL)  # their start-up overlaps the tracker's
        swarm.start_tracker()
        swarm.wait_for_reports(1)
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.1, 1.0))  # the load flows: the kill lands at a random moment of it
            swarm.kill_tracker()
            time.sleep(rng.uniform(0.0, 0.3))
            back = swarm.start_tracker()
            swarm.recovered(back)
        acked, size = swarm.finish()
    finally:
        swarm.close()
    figures = swarm.figures
    print(f"chaos (SQLite): seed {seed}, {figures.kills} SIGKILLs, {acked} reports acked, 0 lost, 0 twice, "
          f"log size {size}, {figures.audits} audits clean, max drain after a restart {figures.max_drain:.2f} s")
    assert figures.kills == KILLS and acked > 0
    assert descendant_pids(os.getpid()) == []
