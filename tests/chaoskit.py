"""The chaos trials' parts, all real processes: the lead's `potluck tracker serve`, volunteers each with
the node's Outbox and Reporter (tests/tracker/chaos_volunteer.py), and `potluck audit verify`.

`ChaosSwarm` starts them in a tmp dir; the trial kills what it likes; `check_log` then proves, from
the log's own entries, that every report a volunteer holds as acknowledged is there exactly once,
at the index its receipt names, and that nothing else is.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpckit import tracker_channel
from swarmkit import make_manifest

from potluck.entries import decode_entry
from potluck.errors import TrackerUnreachable
from potluck.tracker.ledger.store import open_store
from potluck.tracker.swarm.local_swarm import free_port

POTLUCK = str(Path(sys.executable).parent / "potluck")
VOLUNTEER = Path(__file__).parent / "tracker" / "chaos_volunteer.py"
READY_TIMEOUT = 120.0  # a tracker start is 3 s on quiet cores, measured at 23 s on loaded ones
AUDIT_TIMEOUT = 60.0


@dataclass
class Figures:
    kills: int = 0
    database_restarts: int = 0
    audits: int = 0
    max_drain: float = 0.0  # seconds from a restart until every report queued until then was acked


class ChaosSwarm:
    """A signed manifest, a tracker process on `db` (default: SQLite in its state dir), `num_volunteers`
    volunteer processes reporting every `interval` seconds."""

    def __init__(self, tmp_path: Path, *, db: str | None = None):
        self.tmp = tmp_path
        self.manifest, self.state = tmp_path / "swarm.manifest", tmp_path / "state"
        self.db = db or str(self.state / "ledger.sqlite")
        # Signed in-process (the lead's CLI is tested elsewhere): three CLI starts are seconds on loaded cores.
        self.manifest.write_bytes(make_manifest(tmp_path, pinned=False).envelope)
        self.address = f"127.0.0.1:{free_port()}"
        self.tracker: subprocess.Popen | None = None
        self.volunteers: list[subprocess.Popen] = []
        self.folders: list[Path] = []
        self.auditor: subprocess.Popen | None = None
        self.figures = Figures()

    # -- the tracker --

    def start_tracker(self) -> float:
        """Start `potluck tracker serve` on the same state and database; return once it is SERVING."""
        log = open(self.tmp / "tracker.log", "a")  # noqa: SIM115 (the process holds it)
        self.tracker = subprocess.Popen(
            [POTLUCK, "tracker", "serve", "--manifest", str(self.manifest), "--state-dir", str(self.state),
             "--db", self.db, "--listen", self.address], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert self.tracker.poll() is None, f"the tracker exited: {self.tracker_log()}"
            if health_serving(self.address):
                return time.monotonic()
            assert time.monotonic() < deadline, f"the tracker did not start: {self.tracker_log()}"
            time.sleep(0.1)

    def kill_tracker(self) -> None:
        self.tracker.send_signal(signal.SIGKILL)
        self.tracker.wait(timeout=30)
        self.figures.kills += 1

    def stop_tracker(self) -> None:
        self.tracker.send_signal(signal.SIGTERM)
        assert self.tracker.wait(timeout=60) == 0, self.tracker_log()

    def tracker_log(self) -> str:
        return (self.tmp / "tracker.log").read_text()[-3000:]

    # -- the volunteers --

    def start_volunteers(self, count: int, interval: float) -> None:
        """Start them (before the tracker is up, if need be: they register once it is)."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get(
            "PYTHONPATH", "")])}
        for number in range(count):
            folder = self.tmp / f"volunteer-{number}"
            folder.mkdir()
            self.folders.append(folder)
            self.volunteers.append(subprocess.Popen(
                [sys.executable, str(VOLUNTEER), str(self.manifest), self.address, str(self.state / "log.pub"),
                 str(folder), str(interval)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env))

    def wait_for_reports(self, count: int, timeout: float = 60) -> None:
        """Until every volunteer has `count` reports acked (they are up and reporting)."""
        deadline = time.monotonic() + timeout
        while not all(self._count(folder, "state = 'acked'") >= count for folder in self.folders):
            assert time.monotonic() < deadline, "the volunteers did not get their first reports acked"
            self._check_volunteers_alive()
            time.sleep(0.1)

    def wait_drained(self, queued_before: float, since: float, timeout: float = 30) -> float:
        """Until every report queued before `queued_before` (time.time()) is acked; the seconds since `since`."""
        deadline = time.monotonic() + timeout
        while any(self._count(folder, "state = 'queued' AND queued_at <= ?", queued_before)
                  for folder in self.folders):
            assert time.monotonic() < deadline, f"reports queued before the restart still queued after {timeout} s"
            self._check_volunteers_alive()
            time.sleep(0.05)
        drained = time.monotonic() - since
        self.figures.max_drain = max(self.figures.max_drain, drained)
        return drained

    def stop_volunteers(self) -> None:
        """Let them stop queuing and drain; each exits 0 only with its queue empty."""
        for folder in self.folders:
            (folder / "stop").touch()
        for volunteer in self.volunteers:
            out, _ = volunteer.communicate(timeout=60)
            assert volunteer.returncode == 0, out.decode()[-3000:]

    def _check_volunteers_alive(self) -> None:
        for volunteer in self.volunteers:
            if volunteer.poll() is not None:
                raise AssertionError(f"a volunteer exited early: {volunteer.stdout.read().decode()[-3000:]}")

    def _count(self, folder: Path, where: str, *args) -> int:
        path = folder / "outbox.sqlite"
        if not path.exists():
            return 0
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            try:
                return db.execute(f"SELECT COUNT(*) FROM reports WHERE {where}", args).fetchone()[0]
            except sqlite3.OperationalError:  # the volunteer has not made its table yet
                return 0

    # -- the checks --

    def begin_audit(self) -> None:
        """Start `potluck audit verify` (a real process), keeping its state across runs: each run also proves
        the log consistent with the one before it. `end_audit` waits for its verdict."""
        self.auditor = subprocess.Popen([POTLUCK, "audit", "verify", "--tracker", self.address, "--log-key",
                                         str(self.state / "log.pub"), "--state-dir", str(self.tmp / "audit"),
                                         "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)

    def end_audit(self) -> None:
        out, _ = self.auditor.communicate(timeout=AUDIT_TIMEOUT)
        assert self.auditor.returncode == 0, f"audit verify failed after a restart: {out}"
        self.figures.audits += 1

    def audit(self) -> None:
        self.begin_audit()
        self.end_audit()

    def recovered(self, back: float) -> None:
        """After a fault mended at `back` (monotonic, just now): every report queued until now, during the
        fault too, is acked, and the audit (run meanwhile) is clean before the next fault."""
        queued_before = time.time()
        self.begin_audit()
        self.wait_drained(queued_before, back)
        self.end_audit()

    def finish(self) -> tuple[int, int]:
        """The volunteers drain and leave, a last audit, the tracker stops: then `check_log`."""
        self.stop_volunteers()
        self.audit()
        self.stop_tracker()
        return self.check_log()

    def check_log(self) -> tuple[int, int]:
        """With the tracker stopped: every report in every outbox acked, each in the log exactly once at the
        index its ack named, and no other grant. Returns (reports acked, log size)."""
        acked = {}
        for folder in self.folders:
            with sqlite3.connect(f"file:{folder / 'outbox.sqlite'}?mode=ro", uri=True) as db:
                rows = db.execute("SELECT envelope, state, entry_index FROM reports").fetchall()
            assert {state for _, state, _ in rows} == {"acked"}, "a report was not acked (or was rejected)"
            acked.update({bytes(envelope): index for envelope, _, index in rows})
        with open_store(self.db) as store:
            size = len(store.leaf_hashes())
            entries = [decode_entry(data, index) for index, data in enumerate(store.entries(0, size))]
        logged = collections.Counter(entry.grant.report for entry in entries if entry.WhichOneof("kind") == "grant")
        twice = [report for report, times in logged.items() if times > 1]
        assert not twice, f"{len(twice)} reports logged more than once"
        lost = [report for report in acked if report not in logged]
        assert not lost, f"{len(lost)} acknowledged reports are not in the log"
        assert set(logged) == set(acked), f"{len(set(logged) - set(acked))} grants in the log no volunteer sent"
        for report, index in acked.items():
            assert entries[index].grant.report == report, f"an ack named index {index}, which holds another report"
        return len(acked), size

    def close(self) -> None:
        """Stop whatever is still running (a failed trial's leftovers)."""
        for process in [*self.volunteers, self.tracker, self.auditor]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
        for process in self.volunteers:
            if process.stdout is not None:
                process.stdout.close()


def health_serving(address: str) -> bool:
    try:
        with tracker_channel(address, timeout=1.0) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
            return status == health_pb2.HealthCheckResponse.SERVING
    except (grpc.RpcError, TrackerUnreachable):  # not listening yet, or mid-start
        return False
