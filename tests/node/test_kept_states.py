"""A training worker SIGKILLed and restarted still serves the start states its earlier reports name
(node/state_server.py keeps them in the node's state directory), over real libp2p daemons.

Threat to honest volunteers (measured in the e2e swarm): a worker killed mid-training lost the states
it kept in memory; the verifier then checked one of its earlier reports, the restarted worker could not
serve the state it names, and the volunteer was struck and lost its escrow, having done nothing wrong.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from proctree import descendant_pids

pytestmark = pytest.mark.timeout(120)

MAX_KEPT, KEPT = 3, 5
WORKER = """
import json, sys, time
from pathlib import Path
import hivemind, torch
from potluck.node.sketch import state_digest
from potluck.node.state_server import StateServer

identity, directory, keep = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
dht = hivemind.DHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], identity_path=identity, start=True)
server = StateServer(dht, "kept", max_kept=int(sys.argv[4]), directory=directory)
torch.manual_seed(0)
model, digests = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2)), []
for _ in range(keep):  # one state per window, as the worker keeps them
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    digests.append(state_digest(model).hex())
    server.keep(bytes.fromhex(digests[-1]), model)
print(json.dumps(dict(peer=dht.peer_id.to_base58(), maddrs=[str(a) for a in dht.get_visible_maddrs()],
                      digests=digests)), flush=True)
time.sleep(3600)
"""
FETCH = """
import json, sys
import hivemind, torch
from potluck.node.sketch import named_state_digest
from potluck.tracker.verifier.state_fetcher import StateFetcher, StateUnavailable

peer, maddrs, digests = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
dht = hivemind.DHT(initial_peers=maddrs, host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True)
fetcher = StateFetcher(dht, "kept")
model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
like = [p.detach() for p in model.parameters()]
names = [name for name, _ in model.named_parameters()]
found = {}
for digest in digests:
    try:
        tensors = fetcher.fetch(peer, bytes.fromhex(digest), like, timeout=20.0)
        found[digest] = named_state_digest(zip(names, tensors)).hex() == digest
    except StateUnavailable as e:
        found[digest] = str(e)
fetcher.close(); dht.shutdown()
print(json.dumps(found), flush=True)
"""


def start(script: str, *args: str) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own group: the DHT's p2pd goes with it
    line = process.stdout.readline()
    assert line, f"the worker exited with {process.wait(10)} before it was ready"
    return process, json.loads(line)


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    process.stdout.close()


def test_a_restarted_worker_serves_the_states_kept_before_it_was_killed_and_no_damaged_one(tmp_path):
    identity, directory = str(tmp_path / "peer.key"), tmp_path / "kept-states"
    first, kept = start(WORKER, identity, str(directory), str(KEPT), str(MAX_KEPT))
    kill(first)  # as the worker group is SIGKILLed: nothing is written at exit
    files = sorted(directory.glob("*.safetensors"))
    assert {f.stem for f in files} == set(kept["digests"][-MAX_KEPT:])  # the last few, no more
    damaged = kept["digests"][-1]
    data = bytearray((directory / f"{damaged}.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one bit of a parameter flipped on disk
    (directory / f"{damaged}.safetensors").write_bytes(bytes(data))

    second, restarted = start(WORKER, identity, str(directory), "0", str(MAX_KEPT))  # keeps nothing new
    try:
        assert restarted["peer"] == kept["peer"]  # the same PeerID: the one the reports name
        asked = [*kept["digests"], os.urandom(32).hex()]
        result = subprocess.run([sys.executable, "-c", FETCH, restarted["peer"], json.dumps(restarted["maddrs"]),
                                 json.dumps(asked)], capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, result.stderr[-3000:]
        found = json.loads(result.stdout.splitlines()[-1])
    finally:
        kill(second)
    print(f"\nafter the restart: {found}")
    for digest in kept["digests"][-MAX_KEPT:-1]:
        assert found[digest] is True, (digest, found[digest])  # served, and the very state its digest names
    for digest in [*kept["digests"][:-MAX_KEPT], damaged, asked[-1]]:
        assert found[digest] != True and "sent 0 tensors" in found[digest], (digest, found[digest])  # noqa: E712
    assert not (directory / f"{damaged}.safetensors").exists()  # the damaged file is gone, not served
    assert descendant_pids(os.getpid()) == []


def test_a_state_directory_that_cannot_be_written_leaves_the_worker_serving_from_memory(tmp_path):
    not_a_directory = tmp_path / "kept-states"
    not_a_directory.write_text("a file where the directory should be")  # as a full or read-only disk fails
    worker, kept = start(WORKER, str(tmp_path / "peer.key"), str(not_a_directory), str(KEPT), str(MAX_KEPT))
    try:
        result = subprocess.run([sys.executable, "-c", FETCH, kept["peer"], json.dumps(kept["maddrs"]),
                                 json.dumps(kept["digests"][-MAX_KEPT:])], capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, result.stderr[-3000:]
        found = json.loads(result.stdout.splitlines()[-1])
    finally:
        kill(worker)
    assert all(value is True for value in found.values()), found  # it trained on, and serves what it keeps
    assert descendant_pids(os.getpid()) == []
