"""A swarm across hosts made of network namespaces (tests/netkit.py), started the way a lead and its
volunteers would: the lead runs the README's `potluck swarm start … --listen 0.0.0.0:PORT` on its
host, and each volunteer runs the join line it printed, verbatim, on its own host (plus only what
bounds a test: how many epochs, and JSON logs).

What the tests read comes from the tracker's log (every grant's report says whether its averaging
round succeeded and why not) and the processes' own output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import netkit
import pytest
from netkit import Host, Network
from proctree import descendant_pids

from potluck.entries import decode_entry
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import parse_envelope
from potluck.tracker.swarm.local_swarm import BATCH_SIZE, Managed, local_swarm_config

POTLUCK = str(Path(sys.executable).parent / "potluck")
TRACKER_PORT, DHT_PORT = 50051, 31337
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0


@dataclass
class Round:
    name: str
    epoch: int
    succeeded: bool
    failure: str
    mean_loss: float


@dataclass
class HostSwarm:
    workdir: Path
    network: Network
    lead: Host
    join_line: str = ""
    tracker: str = ""
    processes: dict[str, Managed] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)  # volunteer -> account id

    def start(self, num_nodes: int, *, extra: tuple[str, ...] = ()) -> str:
        """`swarm start` on the lead's host (plus `extra` options); returns the join line it printed."""
        home = self.workdir / "lead"
        self._cli(self.lead, "identity", "create", home=home)
        config = self.workdir / "swarm.toml"
        config.write_text(local_swarm_config("hosts", num_nodes=num_nodes))
        swarm = self._spawn("swarm", self.lead, [POTLUCK, "swarm", "start", str(config), "--state-dir",
                                                 str(self.workdir / "swarm"), "--listen", f"0.0.0.0:{TRACKER_PORT}",
                                                 "--dht-port", str(DHT_PORT), *extra], home)
        deadline = time.monotonic() + START_TIMEOUT
        while "Volunteers join with:" not in (text := swarm.log.read_text(errors="replace")):
            if not swarm.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the swarm did not start: {text[-2000:]}")
            time.sleep(0.2)
        lines = text.splitlines()
        self.join_line = lines[lines.index("Volunteers join with:") + 1].strip()
        self.tracker = shlex.split(self.join_line)[shlex.split(self.join_line).index("--tracker") + 1]
        return self.join_line

    def join(self, name: str, host: Host, *, max_epochs: int, extra: tuple[str, ...] = ()) -> Managed:
        """The printed join line, run on `host` as volunteer `name`."""
        home = self.workdir / name
        self._cli(host, "identity", "create", home=home)
        argv = shlex.split(self.join_line)
        assert argv[0] == "potluck", self.join_line
        command = [POTLUCK, *argv[1:], "--max-epochs", str(max_epochs), "--batch-size", str(BATCH_SIZE),
                   "--device", "cpu", "--json-logs", *extra]
        return self._spawn(name, host, command, home)

    def wait(self, names: list[str], timeout: float) -> dict[str, int | None]:
        deadline = time.monotonic() + timeout
        for name in names:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.processes[name].popen.wait(max(1.0, deadline - time.monotonic()))
        return {name: self.processes[name].popen.poll() for name in names}

    def rounds(self) -> list[Round]:
        """Every logged report's averaging round, read from the lead's host."""
        found = []
        for entry in self.entries():
            if entry.WhichOneof("kind") != "grant":
                continue
            report = ContributionReport.FromString(parse_envelope(entry.grant.report).payload)
            name = next((n for n, a in self.accounts.items() if a == report.account_id), report.account_id[:8])
            found.append(Round(name, report.epoch, report.averaging.succeeded, report.averaging.failure,
                               sum(report.losses) / max(1, len(report.losses))))
        return found

    def verdicts(self) -> dict[str, list[str]]:
        """Per volunteer, what the log did to its credit: "vest", and each strike, forfeit and ban with its reason."""
        found: dict[str, list[str]] = {name: [] for name in self.accounts}
        for entry in self.entries():
            kind = entry.WhichOneof("kind")
            if kind in ("vest", "strike", "forfeit", "ban"):
                body = getattr(entry, kind)
                name = next((n for n, a in self.accounts.items() if a == body.account_id), body.account_id[:8])
                found.setdefault(name, []).append(kind if kind == "vest" else f"{kind}: {body.reason}")
        return found

    def status(self) -> dict:
        """`potluck swarm status --json`, run on the lead's host."""
        found = subprocess.run(self.lead.command([POTLUCK, "swarm", "status", "--tracker", self.tracker, "--json"]),
                               capture_output=True, text=True, timeout=60, check=True)
        return json.loads(found.stdout)

    def entries(self) -> list:
        script = ("import sys\nfrom potluck.tracker_client import TrackerClient\n"
                  f"with TrackerClient({self.tracker!r}, rpc_timeout=20) as c:\n"
                  "    size = c.status().tree_size\n"
                  "    for chunk in c.entries(0, size):\n"
                  "        for d in chunk: sys.stdout.buffer.write(len(d).to_bytes(4, 'big') + d)\n")
        raw = subprocess.run(self.lead.command([sys.executable, "-c", script]), capture_output=True, timeout=60,
                             check=True).stdout
        entries, at = [], 0
        while at < len(raw):
            size = int.from_bytes(raw[at:at + 4], "big")
            entries.append(decode_entry(raw[at + 4:at + 4 + size]))
            at += 4 + size
        return entries

    def stop(self) -> None:
        for name, process in reversed(list(self.processes.items())):
            process.stop(STOP_TIMEOUT if name != "swarm" else STOP_TIMEOUT / 2)

    # -- plumbing --

    def _cli(self, host: Host, *args: str, home: Path) -> None:
        found = subprocess.run(host.command([POTLUCK, *args]), capture_output=True, text=True, timeout=60,
                               env={**os.environ, "POTLUCK_HOME": str(home)})
        if found.returncode != 0:
            raise RuntimeError(f"potluck {' '.join(args)} on {host.name}: {found.stderr.strip()}")
        if args[:2] == ("identity", "create") and host is not self.lead:
            from potluck.identity import load_account_key

            self.accounts[home.name] = load_account_key(home / "account.key").account_id

    def _spawn(self, name: str, host: Host, argv: list[str], home: Path) -> Managed:
        log = self.workdir / f"{name}.log"
        popen = subprocess.Popen(host.command(argv), stdout=log.open("w"), stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 env={**os.environ, "POTLUCK_HOME": str(home), "OMP_NUM_THREADS": "1"})
        self.processes[name] = Managed(name, popen, log)
        return self.processes[name]


def run_across_hosts(workdir: Path, tag: str, volunteers: dict[str, str], *, epochs: int, timeout: float,
                     extra: dict[str, tuple[str, ...]] | None = None, during=None) -> HostSwarm:
    """A whole run: the lead on a public host, each volunteer on a host of its own ("public", or "nat":
    behind a NAT router of its own) joining with the printed line (plus `extra[name]`), `during(swarm,
    network)` while they train; then what the tests read: exit codes, rounds, verdicts, and leftovers."""
    if (why := netkit.unavailable()) is not None:
        pytest.skip(why)
    net = Network(f"{tag}{os.getpid() % 100000}")
    running = None
    try:
        running = HostSwarm(workdir, net, net.public("lead"))
        running.start(num_nodes=len(volunteers))
        for name, where in volunteers.items():
            host = net.public(name) if where == "public" else net.behind_nat(name)
            running.join(name, host, max_epochs=epochs, extra=(extra or {}).get(name, ()))
        if during is not None:
            during(running, net)
        running.codes = running.wait(list(volunteers), timeout)
        running.found = running.rounds()
        running.verdicts = running.verdicts()
        running.final_status = running.status()
    finally:
        if running is not None:
            running.stop()
        net.close()
    running.leftovers = descendant_pids(os.getpid())
    return running
