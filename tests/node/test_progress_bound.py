"""hivemind's epoch as a node sees it, bounded by the tracker's (node/progress_bound.py), on a real DHT.

A child process (hivemind's shared-memory futures start a torch_shm_manager that lives as long as
the process that used them) hands records to the tracker the way hivemind's fetcher does (subkey ->
ValueWithExpiration of a progress record) and prints what it made of them; the same attack with real
processes is tests/e2e/test_attacks.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from potluck.proto.wire import EPOCH_SLACK

pytestmark = pytest.mark.timeout(180)

ABSURD = 10**6
SCRIPT = """
import json, sys
import hivemind
from hivemind.optim.progress_tracker import LocalTrainingProgress, ProgressTracker
from hivemind.utils import ValueWithExpiration, get_dht_time
from potluck.node.progress_bound import BoundedProgressTracker

def records(*epochs):
    now = get_dht_time()
    return {f"peer-{i}".encode(): ValueWithExpiration(
        LocalTrainingProgress(peer_id=f"peer-{i}".encode(), epoch=epoch, samples_accumulated=10,
                              samples_per_second=1.0, time=now, client_mode=False).dict(), now + 30)
        for i, epoch in enumerate(epochs)}

dht = hivemind.DHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True)
out = []
try:
    for tracker_epoch, local_epoch, epochs in json.loads(sys.argv[1]):
        tracker = BoundedProgressTracker(dht=dht, prefix="bound_test", target_batch_size=1000, start=False,
                                         tracker_epoch=lambda: tracker_epoch)
        tracker.local_progress = tracker.local_progress.copy(update=dict(epoch=local_epoch))
        bounded = tracker._parse_swarm_progress_data(records(*epochs))
        unbounded = ProgressTracker._parse_swarm_progress_data(tracker, records(*epochs))
        out.append(dict(epoch=bounded.epoch, peers=bounded.num_peers, ignored=tracker.ignored_records,
                        ceiling=tracker.epoch_ceiling, unbounded=unbounded.epoch))
finally:
    dht.shutdown()
print(json.dumps(out))
"""

CASES = {  # name: (tracker's epoch, this peer's epoch, the epochs of the records in the DHT)
    "made_up": (3, 3, [3, 4, ABSURD]),
    "at_bound": (10, 2, [10 + EPOCH_SLACK]),
    "past_bound": (10, 2, [10 + EPOCH_SLACK + 1]),
    "tracker_outage": (0, 40, [41, 42]),
    "late_joiner": (500, 0, [500, 501, ABSURD]),
    "nobody": (0, 0, []),
}


@pytest.fixture(scope="module")
def seen() -> dict[str, dict]:
    found = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(list(CASES.values()))],
                           capture_output=True, text=True, timeout=150)
    assert found.returncode == 0, found.stderr[-3000:]
    return dict(zip(CASES, json.loads(found.stdout.splitlines()[-1]), strict=True))


def test_a_record_at_a_made_up_epoch_is_ignored_and_the_honest_peers_set_the_epoch(seen):
    assert seen["made_up"] == dict(epoch=4, peers=2, ignored=1, ceiling=3 + EPOCH_SLACK,
                                   unbounded=ABSURD)  # unbounded: hivemind takes the highest claim


def test_the_bound_is_the_slack_past_the_tracker_or_this_peer_whichever_is_ahead(seen):
    assert seen["at_bound"]["ceiling"] == 10 + EPOCH_SLACK and seen["at_bound"]["epoch"] == 10 + EPOCH_SLACK
    assert seen["past_bound"]["epoch"] == 2 and seen["past_bound"]["ignored"] == 1  # nobody within: its own
    # Through a tracker outage the node keeps up with the swarm by its own epoch.
    assert seen["tracker_outage"]["epoch"] == 42 and seen["tracker_outage"]["ignored"] == 0


def test_a_late_joiner_catches_up_by_the_trackers_epoch(seen):
    assert seen["late_joiner"]["epoch"] == 501 and seen["late_joiner"]["ignored"] == 1


def test_no_records_is_no_peers(seen):
    assert seen["nobody"]["peers"] == 0 and seen["nobody"]["epoch"] == 0
