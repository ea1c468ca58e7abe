"""The lead's commands as real processes: `tracker serve` answers and stops cleanly; `swarm status`
and `credits show` read it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpckit import tracker_channel
from proctree import descendant_pids
from swarmkit import Volunteer, submit_reports

from potluck.manifest import read_manifest_file
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import TrackerStub
from potluck.tracker.swarm.local_swarm import free_port

pytestmark = pytest.mark.timeout(120)
POTLUCK = str(Path(sys.executable).parent / "potluck")


def cli(*args, **kwargs):
    return subprocess.run([POTLUCK, *args], capture_output=True, text=True, timeout=60, **kwargs)


def test_tracker_serve_answers_reports_and_stops_cleanly(tmp_path):
    assert cli("identity", "create").returncode == 0
    toml, manifest = tmp_path / "swarm.toml", tmp_path / "swarm.manifest"
    assert cli("swarm", "init", "served", "-o", str(toml)).returncode == 0
    assert cli("swarm", "sign", str(toml), "-o", str(manifest)).returncode == 0
    address = f"127.0.0.1:{free_port()}"
    server = subprocess.Popen([POTLUCK, "tracker", "serve", "--manifest", str(manifest), "--state-dir",
                               str(tmp_path / "state"), "--listen", address], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        with tracker_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = TrackerStub(channel)
            signed = read_manifest_file(manifest)
            assert stub.GetManifest(pb.GetManifestRequest(), timeout=10).signed_manifest == signed.envelope
            volunteer = Volunteer.create(tmp_path)
            stub.Register(pb.RegisterRequest(binding=volunteer.binding(signed)), timeout=10)
            acks = submit_reports(stub, [volunteer.report(signed, 1)])
            assert acks[0].verdict == pb.ReportAck.ACCEPTED
        status = cli("swarm", "status", "--tracker", address, "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["reports"] == 1
        assert json.loads(status.stdout)["parameter_spread"] is None  # no volunteer has announced a state
        table = cli("swarm", "status", "--tracker", address)
        assert table.returncode == 0 and "parameter spread" in table.stdout and "not measured yet" in table.stdout
        credits = cli("credits", "show", "--tracker", address, "--json")
        [row] = json.loads(credits.stdout)
        assert row["account_id"] == volunteer.account.account_id and float(row["escrow"]) > 0
        # Without --tracker, both read it from the swarm.json in --state-dir (as `swarm start` writes it).
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "swarm.json").write_text(json.dumps({"tracker": address}))
        status = cli("swarm", "status", "--state-dir", str(elsewhere), "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["tracker"] == address
        credits = cli("credits", "show", "--state-dir", str(elsewhere), "--json")
        assert [row["account_id"] for row in json.loads(credits.stdout)] == [volunteer.account.account_id]
        missing = cli("swarm", "status", "--state-dir", str(tmp_path / "nowhere"))
        assert missing.returncode == 1 and "swarm.json" in missing.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "only the checks made on arrival apply" in err
    time.sleep(0.5)
    assert descendant_pids(os.getpid()) == []


def test_status_of_an_unreachable_tracker_is_one_line(tmp_path):
    result = cli("swarm", "status", "--tracker", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "unreachable" in result.stderr
