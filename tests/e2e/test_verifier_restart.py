"""The verifier process killed mid-run, in a real swarm with two honest volunteers: the tracker
restarts it, sends its outstanding jobs again, and every check still gets its verdict.

Before this was supervised, a dead verifier ended the tracker's reader thread silently: nothing
vested again and jobs piled up, with nothing in `swarm status` to say so.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from proctree import descendant_pids

from potluck.entries import decode_entry
from potluck.tracker.swarm.local_swarm import LocalSwarm, local_swarm_config
from potluck.tracker_client import TrackerClient

EPOCHS = 5
NODES = ("honest-1", "honest-2")
ANSWER_TIMEOUT = 120.0  # a state no peer serves fails after 3 tries, each within 20 s, 5 s apart

pytestmark = pytest.mark.timeout(900)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("restart")
    swarm = LocalSwarm(workdir, config_text=local_swarm_config("restart", num_nodes=len(NODES)),
                       num_nodes=len(NODES))
    result = {}
    try:
        info = swarm.start()
        for name in NODES:
            swarm.start_node(name, max_epochs=EPOCHS)
        with TrackerClient(info["tracker"], rpc_timeout=10) as client:
            # Killed while it holds checks: they must be sent again to the new process, and answered.
            before = wait_for(lambda: (s := client.status()).num_reports >= 2 and s.verifier.outstanding_jobs > 0
                              and s, 600, "reports with checks outstanding")
            pid = before.verifier.pid
            # Only a process this test started: the verifier is below the swarm we spawned.
            assert before.verifier.running and pid in descendant_pids(swarm.swarm.popen.pid)
            result["outstanding_at_kill"] = before.verifier.outstanding_jobs
            os.kill(pid, signal.SIGKILL)
            result["after_restart"] = wait_for(
                lambda: (s := client.status()).verifier.restarts >= 1 and s.verifier.running and s, 180,
                "the verifier's restart")
            result["old_group_alive"] = _group_alive(pid)  # its DHT and p2pd must go with it
            result["codes"] = swarm.wait_nodes(700)
            result["final"] = wait_for(lambda: (s := client.status()).verifier.outstanding_jobs == 0 and s,
                                       ANSWER_TIMEOUT, "every outstanding job's verdict")
            size = client.status().tree_size
            result["entries"] = [decode_entry(d) for chunk in client.entries(0, size) for d in chunk]
        result["killed"] = pid
    finally:
        swarm.stop()
    result["leftovers"] = descendant_pids(os.getpid())
    return result


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_killed_verifier_is_restarted_and_shows_in_status(run):
    after = run["after_restart"].verifier
    assert after.restarts == 1 and after.running
    assert after.pid != run["killed"]
    assert "SIGKILL" in after.last_exit


def test_no_check_is_lost_and_honest_volunteers_still_vest(run):
    print(f"\njobs outstanding when the verifier was killed: {run['outstanding_at_kill']}")
    assert run["outstanding_at_kill"] > 0
    assert set(run["codes"]) == set(NODES)
    assert run["final"].verifier.outstanding_jobs == 0
    kinds = [e.WhichOneof("kind") for e in run["entries"]]
    assert "vest" in kinds
    assert not {"strike", "forfeit", "ban"} & set(kinds), kinds


def test_nothing_is_left_running(run):
    # Orphans of the killed process would be re-parented away from us: its group is checked by id.
    assert not run["old_group_alive"]
    assert run["leftovers"] == []
