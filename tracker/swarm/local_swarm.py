"""A whole swarm on 127.0.0.1, run as real processes: the lead's `potluck swarm start` and volunteers'
`potluck node join`. It is what `potluck demo` runs (the end-to-end tests run it too, through
tests/swarmkit.py).

Every process is started in a session of its own (a terminal's Ctrl-C reaches only us, and we stop
them in order), tracked by pid, and stopped on exit: SIGTERM first, SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from potluck.errors import PotluckError
from potluck.proto import tracker_pb2 as pb
from potluck.tracker.swarm.swarm_config import render_swarm_template
from potluck.tracker_client import TrackerClient

START_TIMEOUT = 120.0
NODE_STOP_TIMEOUT = 40.0
SWARM_STOP_TIMEOUT = 30.0
# Epochs of several seconds on 2 shared cores: long enough for peers to find each other's progress.
STEPS_PER_EPOCH_PER_NODE = 500
BATCH_SIZE = 256
TASK_PARAMS = "hidden = 256"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_swarm_config(name: str, *, num_nodes: int, batch_size: int = BATCH_SIZE) -> str:
    """swarm.toml for a swarm on one machine: short epochs and credits that vest soon (every report is
    recomputed: with few reports, the least escrow depth at a lower rate would outlast a demo).

    Matchmaking keeps the template's 3 s (and 30 s averaging timeout): with 2 s, a loaded 2-core machine
    sometimes ran a whole scenario without one averaging round that every volunteer joined.
    """
    text = render_swarm_template(name)
    for old, new in {
        "target_batch_size = 65536": f"target_batch_size = {num_nodes * batch_size * STEPS_PER_EPOCH_PER_NODE}",
        "sampling_rate = 0.25 ": "sampling_rate = 1.0  ",
        "new_account_checks = 5": "new_account_checks = 2",
        "escrow_depth = 6": "escrow_depth = 3",
        "# Task parameters; anything left out takes the task's default.": TASK_PARAMS,
    }.items():
        if old not in text:
            raise AssertionError(f"swarm template changed: {old!r} not found")
        text = text.replace(old, new)
    return text


@dataclass
class Managed:
    """A process we started: its Popen, and where its output goes."""

    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(30)
        return self.popen.returncode


class LocalSwarm:
    """`potluck swarm start` plus any number of `potluck node join`, all on 127.0.0.1."""

    def __init__(self, workdir: Path, *, config_text: str | None = None, num_nodes: int = 3,
                 swarm_args: tuple[str, ...] = ()):
        self.workdir = Path(workdir)
        self.swarm_args = swarm_args  # more `swarm start` options (--data-dir, --checkpoint-every)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_text = config_text or local_swarm_config("local", num_nodes=num_nodes)
        # The nodes share this machine's cores. Each torch thread pool as wide as the machine would
        # oversubscribe them (OpenMP threads spin while they wait), and averaging rounds time out.
        cores = len(os.sched_getaffinity(0))
        self.node_threads = os.environ.get("OMP_NUM_THREADS", str(max(1, cores // num_nodes)))
        self.potluck = str(Path(sys.executable).parent / "potluck")
        self.swarm: Managed | None = None
        self.nodes: dict[str, Managed] = {}
        self.info: dict = {}

    @property
    def state_dir(self) -> Path:
        return self.workdir / "swarm"

    def run_cli(self, *args: str, home: Path, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run([self.potluck, *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "POTLUCK_HOME": str(home)}, stdin=subprocess.DEVNULL)

    def spawn(self, name: str, command: list[str], home: Path, env: dict[str, str] | None = None) -> Managed:
        """Run `command` as `name`, with its own POTLUCK_HOME and session, its output in `name`.log."""
        log = self.workdir / f"{name}.log"
        popen = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 env={**os.environ, "POTLUCK_HOME": str(home), **(env or {})})
        return Managed(name, popen, log)

    def start(self) -> dict:
        """Start the lead's swarm; return its swarm.json once the tracker answers."""
        home = self.workdir / "lead"
        self.run_cli("identity", "create", home=home).check_returncode()
        config = self.workdir / "swarm.toml"
        config.write_text(self.config_text)
        tracker = f"127.0.0.1:{free_port()}"
        self.swarm = self.spawn("swarm", [self.potluck, "swarm", "start", str(config), "--state-dir",
                                          str(self.state_dir), "--listen", tracker, "--dht-port", str(free_port()),
                                          *self.swarm_args],
                                home)
        info_file = self.state_dir / "swarm.json"
        deadline = time.monotonic() + START_TIMEOUT
        while not info_file.exists():
            if not self.swarm.alive() or time.monotonic() > deadline:
                raise PotluckError(f"the swarm did not start within {START_TIMEOUT:.0f}s (see {self.swarm.log})")
            time.sleep(0.2)
        self.info = json.loads(info_file.read_text())
        return self.info

    def start_node(self, name: str, *, max_epochs: int | None = None, extra: tuple[str, ...] = ()) -> Managed:
        """`potluck node join` as volunteer `name`, with an account of its own."""
        return self.spawn_node(name, [self.potluck, *self.node_args(name, max_epochs=max_epochs, extra=extra)])

    def node_args(self, name: str, *, max_epochs: int | None = None, extra: tuple[str, ...] = ()) -> list[str]:
        """The `node join …` arguments for volunteer `name` (its account key is created if it has none)."""
        home = self.workdir / name
        if not (home / "account.key").exists():
            self.run_cli("identity", "create", home=home).check_returncode()
        args = ["node", "join", "--tracker", self.info["tracker"], "--lead-key", self.info["lead"],
                "--state-dir", str(home / "node"), "--host-maddr", "/ip4/127.0.0.1/tcp/0", "--device", "cpu",
                "--batch-size", str(BATCH_SIZE), "--json-logs", *extra]
        if max_epochs is not None:
            args += ["--max-epochs", str(max_epochs)]
        return args

    def spawn_node(self, name: str, command: list[str]) -> Managed:
        """Run a volunteer's `command` with its share of the cores."""
        self.nodes[name] = self.spawn(name, command, self.workdir / name, env={"OMP_NUM_THREADS": self.node_threads})
        return self.nodes[name]

    def status(self) -> pb.StatusResponse:
        with TrackerClient(self.info["tracker"], rpc_timeout=10) as client:
            return client.status()

    def wait_nodes(self, timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        for node in self.nodes.values():
            node.popen.wait(max(1.0, deadline - time.monotonic()))
        return {name: node.popen.returncode for name, node in self.nodes.items()}

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop(NODE_STOP_TIMEOUT)
        if self.swarm is not None:
            self.swarm.stop(SWARM_STOP_TIMEOUT)

    def __enter__(self) -> LocalSwarm:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
