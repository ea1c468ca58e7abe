"""The PostgreSQL server under a tracker stopped and restarted under load, and the tracker SIGKILLed too.

All real processes: `potluck tracker serve --db postgresql://…` on a PostgreSQL server of the test's
own (tests/pgserver.py: the shared CI cluster is never stopped), volunteers with the node's Outbox
and Reporter, `potluck audit verify` after every restart. The database goes away at random moments,
by a crash (`immediate`) or a clean stop (`fast`), for a random while: appends in flight fail or
land unseen, the store reconnects, and the ledger settles what it cannot know. Shows 0 acknowledged
reports lost or doubled, and the log audit-clean after each restart. The seed is printed;
POTLUCK_CHAOS_SEED replays a run.
"""

import os
import random
import time

import pytest
from chaoskit import ChaosSwarm
from pgserver import PgServer, postgres_bin
from proctree import descendant_pids

from potluck.tracker.swarm.local_swarm import free_port

pytestmark = pytest.mark.timeout(300)  # about 50 s on quiet cores: a bound for a stuck run, not a slow machine

DATABASE_RESTARTS = 5
TRACKER_KILLS = 3
VOLUNTEERS = 3
INTERVAL = 0.6


def test_database_restarts_and_tracker_kills_lose_no_acknowledged_report(tmp_path):
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    seed = int(os.environ.get("POTLUCK_CHAOS_SEED", random.randrange(2**32)))
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    faults = ["database"] * DATABASE_RESTARTS + ["tracker"] * TRACKER_KILLS
    rng.shuffle(faults)
    pg = PgServer(free_port())
    swarm = None
    try:
        pg.start()
        swarm = ChaosSwarm(tmp_path, db=pg.url)
        swarm.start_volunteers(VOLUNTEERS, INTERVAL)
        swarm.start_tracker()
        swarm.wait_for_reports(1)
        for fault in faults:
            time.sleep(rng.uniform(0.1, 1.0))  # the fault lands at a random moment of the load
            if fault == "database":
                pg.stop(rng.choice(["immediate", "fast"]))
                # Long enough that reports arrive meanwhile (5 a second), short enough for the store's
                # reconnect attempts (about 8 s): their appends wait in them, or fail and are resent.
                time.sleep(rng.uniform(0.5, 3.0))
                pg.start()
                swarm.figures.database_restarts += 1
                back = time.monotonic()
            else:
                swarm.kill_tracker()
                back = swarm.start_tracker()
            swarm.recovered(back)
        acked, size = swarm.finish()
    finally:
        if swarm is not None:
            swarm.close()
        pg.close()
    figures = swarm.figures
    print(f"chaos (PostgreSQL): seed {seed}, {figures.database_restarts} database restarts, {figures.kills} "
          f"SIGKILLs, {acked} reports acked, 0 lost, 0 twice, log size {size}, {figures.audits} audits clean, "
          f"max drain after a restart {figures.max_drain:.2f} s")
    assert figures.database_restarts == DATABASE_RESTARTS and figures.kills == TRACKER_KILLS and acked > 0
    assert descendant_pids(os.getpid()) == []
