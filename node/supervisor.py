"""`potluck node join`: the supervisor process.

It obtains and checks the manifest and data, registers the account-PeerID binding, keeps the
outbox and reporter, and runs the training worker in a process group of its own, restarting it
with backoff when it crashes. SIGINT/SIGTERM: the worker finishes its step and leaves averaging, the
outbox is flushed, the worker keeps serving the states its reports name until the tracker has checked
them (at most CHECKS_WAIT: a drawn report whose state cannot be served fails its check), exit 0; a
second signal stops everything at once.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import socket
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from potluck.address import check_host_port
from potluck.binding import load_or_create_peer_identity, make_binding
from potluck.entries import credits_text
from potluck.errors import ConfigError, PotluckError, TrackerError
from potluck.group_process import GroupProcess
from potluck.identity import load_account_key
from potluck.manifest import initial_state_shard, param_dict, training_shards
from potluck.node.hardware import pick_device
from potluck.node.hivemind_config import HivemindConfig
from potluck.node.outbox import Outbox
from potluck.node.reachability import find_reachability
from potluck.node.reporter import Reporter
from potluck.node.reports import build_report
from potluck.node.status_display import FAILURES_TO_REPORT, StatusDisplay, averaging_advice
from potluck.node.swarm_source import obtain_shards, obtain_swarm
from potluck.node.training import TrainingConfig, WindowStats
from potluck.node.worker import WorkerDone, WorkerReady, WorkerSpec, WorkerStatus, run_worker

logger = logging.getLogger(__name__)

GRACEFUL_STOP_TIMEOUT = 20.0
FINISHED_EXIT_TIMEOUT = 10.0
FLUSH_TIMEOUT = 5.0
CHECKS_WAIT = 120.0  # seconds a leaving node serves its states while the tracker still checks its reports
RESTART_BACKOFF = (1.0, 60.0)
CREDITS_POLL_INTERVAL = 10.0
CALL_TIMEOUT = 15.0


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """`potluck node join`'s options, one field per flag."""

    tracker: str | None
    manifest: Path | None
    identity: Path
    state_dir: Path
    lead_key: bytes | None
    device: str
    batch_size: int | None
    max_epochs: int | None
    client_mode: bool
    host_maddrs: tuple[str, ...]
    announce_maddrs: tuple[str, ...]
    data_dir: Path | None
    json_logs: bool
    tracker_cert: str | None = None  # the tracker's TLS certificate fingerprint (hex), from the join line


class Node:
    def __init__(self, config: NodeConfig):
        if (config.tracker is None) == (config.manifest is None) and config.manifest is None:
            raise ConfigError("give --tracker HOST:PORT or --manifest FILE (or both)")
        if config.tracker is not None:
            check_host_port(config.tracker, "--tracker")
        if config.max_epochs is not None and config.max_epochs <= 0:
            raise ConfigError(f"--max-epochs: must be a positive integer (got {config.max_epochs})")
        self.config = config
        self.stopping = threading.Event()
        # The newest epoch the tracker has admitted a report of, as last heard; the worker reads it (shared
        # memory, written only here: no lock a killed worker could hold) to bound hivemind's view of the epoch.
        self.tracker_epoch = multiprocessing.get_context("fork").RawValue(ctypes.c_uint64, 0)
        # The last sequence the tracker logged for our account: a lost state dir (an empty outbox) must not
        # number its reports from 1 again, or every one is refused as a replay.
        self.tracker_sequence = 0
        self.signals = 0
        self.worker: GroupProcess | None = None
        self.worker_done = False  # the worker trained its epochs and now only serves its kept states
        self.windows_done = 0
        self.epoch_times: list[float] = []
        self.failed_rounds = 0  # averaging rounds failed in a row

    # -- preparation: everything that can fail with a clear message, before any process starts --

    def prepare(self) -> None:
        config = self.config
        self.account = load_account_key(config.identity)
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.device = pick_device(config.device)
        _check_ports_free(config.host_maddrs)
        self.manifest, self.client, self.log_key = obtain_swarm(
            tracker=config.tracker, tracker_cert=config.tracker_cert, manifest_path=config.manifest,
            lead_key=config.lead_key, state_dir=config.state_dir, rpc_timeout=CALL_TIMEOUT)
        data_dirs = [config.data_dir] if config.data_dir else []
        self.shards = obtain_shards(self.manifest, data_dirs=data_dirs, cache_dir=config.state_dir / "data",
                                    client=self.client)
        self.peer = load_or_create_peer_identity(config.state_dir / "peer.key")
        self.client.register(make_binding(self.account, self.peer, self.manifest.origin))
        self._hear_tracker_epoch()
        self.reach = find_reachability(self.client, config.host_maddrs or ("/ip4/0.0.0.0/tcp/0",),
                                       config.announce_maddrs, config.client_mode)
        logger.info("%s", self.reach.summary)
        self.outbox = Outbox(config.state_dir / "outbox.sqlite")
        self.reporter = Reporter(self.outbox, self.client, log_key=self.log_key)
        logger.info("joined swarm %s as account %s, peer %s", self.manifest.origin, self.account.account_id[:12],
                    self.peer.peer_id)

    def _spec(self) -> WorkerSpec:
        m, config = self.manifest.manifest, self.config
        training = TrainingConfig(
            hivemind=HivemindConfig.from_manifest(m), data_seed=m.swarm_seed, account_id=self.account.account_id,
            batch_size_per_step=1, host_maddrs=self.reach.host_maddrs, announce_maddrs=config.announce_maddrs,
            client_mode=self.reach.client_mode, identity_path=str(self.peer.path),
            kept_states_dir=str(config.state_dir / "kept-states"), device=self.device)
        remaining = None if config.max_epochs is None else config.max_epochs - self.windows_done
        trained_on = training_shards(m)
        return WorkerSpec(training=training, task_name=m.task.name, task_params=param_dict(m.task),
                          shards=tuple((sha, data) for sha, data in self.shards if sha in trained_on),
                          account=self.account, origin=m.origin,
                          requested_batch_size=config.batch_size, max_windows=remaining,
                          tracker_epoch=self.tracker_epoch,
                          initial_state=dict(self.shards).get(initial_state_shard(m)))

    # -- running --

    def run(self) -> int:
        self.prepare()
        self.display = StatusDisplay(json_logs=self.config.json_logs)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        reporter_stop = threading.Event()
        threads = [threading.Thread(target=self.reporter.run, args=(reporter_stop,), daemon=True, name="reporter"),
                   threading.Thread(target=self._poll_credits, args=(reporter_stop,), daemon=True, name="credits")]
        for thread in threads:
            thread.start()
        try:
            self._supervise()
        finally:
            self._leave(graceful=self.signals < 2)
            reporter_stop.set()
            for thread in threads:
                thread.join(timeout=10)
            self._refresh_counts()
            if queued := self.outbox.counts().queued:
                logger.warning("left with %d report(s) not yet logged by the tracker; they stay in %s and are "
                               "sent when this node starts again", queued, self.outbox.path)
            self.display.update(state="stopped")
            self.display.close()
            self.reporter.close()
            self.outbox.close()
            self.client.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0 if self.signals < 2 else 1

    def _on_signal(self, signum, frame) -> None:
        self.signals += 1
        self.stopping.set()
        if self.signals == 1:
            logger.info("%s: finishing the current step, flushing reports, leaving the swarm (again to stop now)",
                        signal.Signals(signum).name)
        else:
            logger.warning("second signal: stopping at once")
            if self.worker is not None:
                self.worker.kill()

    def _supervise(self) -> None:
        backoff = RESTART_BACKOFF[0]
        while not self.stopping.is_set():
            started = time.monotonic()
            self.worker, self.worker_done = GroupProcess(run_worker, self._spec(), name="potluck-worker").start(), False
            self.display.update(state="joining")
            finished = self._follow_worker()
            if finished or self.stopping.is_set():
                return
            self.worker.kill()
            code = self.worker.exitcode
            if time.monotonic() - started > 10 * RESTART_BACKOFF[1]:
                backoff = RESTART_BACKOFF[0]
            logger.warning("training worker exited with code %s; restarting in %.0fs", code, backoff)
            self.display.update(state=f"restarting (worker exited with {code})")
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF[1])

    def _follow_worker(self) -> bool:
        """Handle the worker's events until it finishes its epochs (True), exits or we are stopping (False)."""
        while not self.stopping.is_set():
            event = self.worker.next_event(0.5)
            if event is None:
                if self.worker.exited():
                    return False
                continue
            if isinstance(event, WorkerDone):
                self.worker_done = True  # it trained its epochs; it serves its states until `_leave` lets it go
                return True
            self._on_event(event)
        return False

    def _on_event(self, event) -> None:
        if isinstance(event, WorkerReady):
            self.display.update(state="training", epoch=event.epoch)
            logger.info("training as peer %s with batch size %d", event.peer_id, event.batch_size)
        elif isinstance(event, WindowStats):
            self._on_window(event)
        elif isinstance(event, WorkerStatus):
            self.display.update(num_peers=event.num_peers, epoch=event.epoch)

    def _on_window(self, stats: WindowStats) -> None:
        sequence = self.outbox.next_sequence(above=self.tracker_sequence)
        self.outbox.put(sequence, build_report(stats, manifest=self.manifest, account=self.account,
                                               sequence=sequence))
        self.windows_done += 1
        self.failed_rounds = 0 if stats.averaged else self.failed_rounds + 1
        advice = averaging_advice(self.failed_rounds, stats.averaging_error or "", self.reach.client_mode)
        if advice and self.failed_rounds == FAILURES_TO_REPORT:
            logger.warning("averaging %s", advice)
        self.display.update(averaging=advice)
        now = time.monotonic()
        self.epoch_times = [*self.epoch_times[-9:], now]
        swarm_rate = 0.0
        if len(self.epoch_times) > 1:
            intervals = [b - a for a, b in zip(self.epoch_times, self.epoch_times[1:], strict=False)]
            swarm_rate = self.manifest.manifest.hivemind.target_batch_size / statistics.mean(intervals)
        self.display.update(epoch=stats.epoch + 1, loss=sum(stats.losses) / max(1, len(stats.losses)),
                            local_samples_per_second=stats.samples / max(stats.wall_time, 1e-9),
                            swarm_samples_per_second=swarm_rate)
        self._refresh_counts()

    def _refresh_counts(self) -> None:
        counts = self.outbox.counts()
        self.display.update(queued=counts.queued, acked=counts.acked, rejected=counts.rejected)

    def _poll_credits(self, stop: threading.Event) -> None:
        unit = self.manifest.manifest.credit_policy.flops_per_credit
        while not stop.wait(CREDITS_POLL_INTERVAL if self.outbox.counts().acked else 1.0):
            self._refresh_counts()
            try:
                self._hear_tracker_epoch()
                balances = self.client.balances(self.account.account_id)
            except TrackerError:
                continue
            for balance in balances.balances:
                self.display.update(credits_pending=credits_text(balance.escrow_flops, unit),
                                    credits_vested=credits_text(balance.vested_flops, unit))

    def _hear_tracker_epoch(self) -> None:
        status = self.client.status(self.account.account_id)
        self.tracker_epoch.value = max(self.tracker_epoch.value, status.epoch)
        self.tracker_sequence = max(self.tracker_sequence, status.last_sequence)

    def _leave(self, graceful: bool) -> None:
        """Let the worker finish its step and leave averaging, keeping the windows it closes; send the reports;
        let it go once the tracker has checked them (or CHECKS_WAIT passed). Unless told to hurry."""
        worker = self.worker
        if graceful and worker is not None and not worker.exited():
            if not self.worker_done:
                self.display.update(state="leaving the swarm")
                worker.request_stop()
                deadline = time.monotonic() + GRACEFUL_STOP_TIMEOUT
                while not self.worker_done and not worker.exited() and time.monotonic() < deadline:
                    event = worker.next_event(0.2)
                    if isinstance(event, WorkerDone):
                        self.worker_done = True
                    elif event is not None:
                        self._on_event(event)
            self.display.update(state="flushing reports")
            self.reporter.flush(FLUSH_TIMEOUT)
            if self.worker_done and not worker.exited() and not self.outbox.queued(limit=1):
                self._await_checks()  # (with reports still queued the tracker is out of reach: nothing to wait for)
            worker.stop(FINISHED_EXIT_TIMEOUT, on_event=self._on_event)  # hivemind's shutdown can hang on a dead child
        elif graceful:
            self.display.update(state="flushing reports")
            self.reporter.flush(FLUSH_TIMEOUT)
        if worker is not None:
            while (event := worker.next_event(0)) is not None:
                self._on_event(event)
            worker.kill()

    def _await_checks(self) -> None:
        """Until the tracker has answered every check of this account's reports, or CHECKS_WAIT passed."""
        self.display.update(state="serving our states while the tracker checks our reports")
        deadline, errors = time.monotonic() + CHECKS_WAIT, 0
        while time.monotonic() < deadline and self.signals < 2 and errors < 3:
            try:
                balances = self.client.balances(self.account.account_id).balances
            except TrackerError:
                errors += 1
            else:
                if all(b.checks_pending == 0 for b in balances):
                    return
            time.sleep(1.0)
        logger.warning("left with reports still being checked: a drawn one may fail for want of its state")


def _check_ports_free(maddrs: tuple[str, ...]) -> None:
    """A clear error for a taken port now, instead of a crashed worker later."""
    for maddr in maddrs:
        parts = maddr.strip("/").split("/")
        if len(parts) < 4 or parts[2] != "tcp" or parts[3] == "0":
            continue
        family = socket.AF_INET6 if parts[0] == "ip6" else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((parts[1], int(parts[3])))
            except OSError as e:
                raise PotluckError(f"--host-maddr {maddr}: port {parts[3]} is in use ({e.strerror})") from None
