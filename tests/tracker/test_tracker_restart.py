"""A tracker restarted while checks were pending checks those grants again: they never vest on depth alone.

Without this, stopping the tracker would drop the verifier's queue, and every grant waiting for its
recomputation would vest as soon as enough later reports arrived, checked or not. The lead's real
`potluck swarm start` runs twice on one state dir (bootstrap peer, tracker, verifier: real processes).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grpckit import tracker_channel
from proctree import descendant_pids
from swarmkit import Volunteer, submit_reports

from potluck.entries import decode_entry
from potluck.manifest import read_manifest_file
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import TrackerStub
from potluck.tracker.swarm.local_swarm import free_port
from potluck.tracker_client import TrackerClient

pytestmark = pytest.mark.timeout(300)
POTLUCK = str(Path(sys.executable).parent / "potluck")


def cli(*args):
    return subprocess.run([POTLUCK, *args], capture_output=True, text=True, timeout=60)


def start(toml: Path, state: Path, address: str, dht_port: int) -> subprocess.Popen:
    (state / "swarm.json").unlink(missing_ok=True)
    lead = subprocess.Popen([POTLUCK, "swarm", "start", str(toml), "--state-dir", str(state), "--listen", address,
                             "--dht-port", str(dht_port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (state / "swarm.json").exists():
        if lead.poll() is not None or time.monotonic() > deadline:
            stop(lead)
            raise AssertionError(f"swarm start did not get ready: {lead.stderr.read()[-2000:]}")
        time.sleep(0.2)
    return lead


def stop(lead: subprocess.Popen) -> None:
    lead.send_signal(signal.SIGTERM)
    _, err = lead.communicate(timeout=90)
    assert lead.returncode == 0, err[-2000:]


def submit(address: str, volunteer: Volunteer, state: Path, sequences: range) -> None:
    # Epoch 0 from a state no peer ever had, from a peer that does not run: the verifier asks that peer for
    # it FETCH_ATTEMPTS times, FETCH_RETRY (5 s) apart, before the check fails; this test reads the balances
    # within a second or two of each submission, so each check is still pending then (checks_pending says so).
    manifest = read_manifest_file(state / "swarm.manifest")
    with tracker_channel(address) as channel:
        stub = TrackerStub(channel)
        stub.Register(pb.RegisterRequest(binding=volunteer.binding(manifest)), timeout=30)
        acks = submit_reports(stub, [volunteer.report(manifest, s, epoch=0) for s in sequences], timeout=60)
    assert [ack.verdict for ack in acks] == [pb.ReportAck.ACCEPTED] * len(sequences), acks


def balance(address: str, volunteer: Volunteer) -> dict:
    shown = cli("credits", "show", "--tracker", address, "--account", volunteer.account.account_id, "--json")
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    return row


def test_grants_pending_at_a_restart_are_checked_again_and_do_not_vest_meanwhile(tmp_path):
    assert cli("identity", "create").returncode == 0
    toml, state = tmp_path / "swarm.toml", tmp_path / "state"
    assert cli("swarm", "init", "restarted", "-o", str(toml)).returncode == 0
    depth = int(next(line.split("=")[1] for line in toml.read_text().splitlines()
                     if line.startswith("escrow_depth")).split("#")[0])
    address, dht_port = f"127.0.0.1:{free_port()}", free_port()
    volunteer = Volunteer.create(tmp_path)

    lead = start(toml, state, address, dht_port)
    try:
        submit(address, volunteer, state, range(1, depth + 1))
        assert float(balance(address, volunteer)["escrow"]) > 0
    finally:
        stop(lead)

    lead = start(toml, state, address, dht_port)
    try:
        submit(address, volunteer, state, range(depth + 1, 2 * depth + 2))
        # Every grant from before the restart now has more than `depth` accepted reports after it, which
        # alone would vest it; none may vest while its check, lost with the first process, is pending.
        row = balance(address, volunteer)
        assert float(row["vested"]) == 0 and row["strikes"] == 0 and row["checks_pending"] > 0, row
    finally:
        stop(lead)
    time.sleep(0.5)
    assert descendant_pids(os.getpid()) == []


def test_a_swarm_restarted_with_an_unchanged_config_keeps_its_manifest_and_takes_its_reports(tmp_path):
    # Threat: `swarm start` signs the manifest anew each time; were its id to change, every report a node
    # queued against it before the restart would be refused, and that honest credit lost.
    assert cli("identity", "create").returncode == 0
    toml, state = tmp_path / "swarm.toml", tmp_path / "state"
    assert cli("swarm", "init", "kept", "-o", str(toml)).returncode == 0
    address, dht_port = f"127.0.0.1:{free_port()}", free_port()
    volunteer = Volunteer.create(tmp_path)
    lead = start(toml, state, address, dht_port)
    try:
        before = read_manifest_file(state / "swarm.manifest")
        with tracker_channel(address) as channel:
            TrackerStub(channel).Register(pb.RegisterRequest(binding=volunteer.binding(before)), timeout=30)
    finally:
        stop(lead)
    queued = [volunteer.report(before, sequence) for sequence in (1, 2)]  # trained while the lead restarts

    lead = start(toml, state, address, dht_port)
    try:
        assert read_manifest_file(state / "swarm.manifest").manifest_id == before.manifest_id
        with tracker_channel(address) as channel:
            acks = submit_reports(TrackerStub(channel), queued, timeout=60)
        assert [ack.verdict for ack in acks] == [pb.ReportAck.ACCEPTED] * 2, acks
        with TrackerClient(address) as client:
            size = client.status().tree_size
            logged = [decode_entry(e).grant.report for batch in client.entries(0, size) for e in batch]
        assert sorted(r for r in logged if r) == sorted(queued)
    finally:
        stop(lead)
