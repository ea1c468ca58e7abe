"""The training worker: runs in a `GroupProcess` forked by the supervisor.

hivemind objects are created here, in the process's main thread. Everything the worker starts
(the DHT process, p2pd, averagers) stays in its process group, so the supervisor stops all of it
with one `killpg`; if the supervisor dies, the group kills itself.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any

from potluck.attestations import sign_attestation
from potluck.identity import AccountKey
from potluck.node.hardware import pick_batch_size
from potluck.node.tasks import get_task
from potluck.node.training import TrainingConfig, TrainingWorker

logger = logging.getLogger(__name__)

STATUS_INTERVAL = 2.0
# Longest a worker serves its kept states after training, waiting for the supervisor's word (which comes
# sooner: node/supervisor.py gives up waiting for the tracker's checks after CHECKS_WAIT).
MAX_LINGER = 300.0


# What the worker tells the supervisor, besides each closed window's `WindowStats`.
@dataclass(frozen=True)
class WorkerReady:
    """The peer joined the swarm (and, if late, loaded its state)."""

    peer_id: str
    maddrs: list[str]
    batch_size: int
    epoch: int


@dataclass(frozen=True)
class WorkerStatus:
    """Every STATUS_INTERVAL seconds: where this peer and the swarm are."""

    epoch: int
    swarm_epoch: int
    num_peers: int
    samples_per_second: float


@dataclass(frozen=True)
class WorkerDone:
    """The worker trained the windows it was asked for (or was asked to stop) and has left averaging; it
    serves its kept states until asked to stop again, then shuts hivemind down."""


@dataclass(frozen=True, kw_only=True)
class WorkerSpec:
    """What the forked worker needs; `training.batch_size_per_step` is chosen in the worker."""

    training: TrainingConfig
    task_name: str
    task_params: dict
    shards: tuple[tuple[str, bytes], ...]
    account: AccountKey
    origin: str
    requested_batch_size: int | None
    max_windows: int | None
    tracker_epoch: Any  # a shared c_uint64 the supervisor updates: the newest epoch the tracker admitted
    initial_state: bytes | None = None  # a resumed swarm's starting checkpoint (safetensors)


def run_worker(stop, events, spec: WorkerSpec) -> None:
    """Entry point of the worker's `GroupProcess`: `events` goes to the supervisor, `stop` asks us to leave."""
    task = get_task(spec.task_name, spec.task_params, shards=spec.shards or None, initial_state=spec.initial_state)
    batch_size = pick_batch_size(task, spec.training.device, requested=spec.requested_batch_size,
                                 target_batch_size=spec.training.hivemind.target_batch_size)
    config = replace(spec.training, batch_size_per_step=batch_size)

    def on_ready(worker: TrainingWorker) -> None:
        events.put(WorkerReady(peer_id=worker.peer_id, maddrs=worker.visible_maddrs, batch_size=batch_size,
                               epoch=worker.local_epoch))
        threading.Thread(target=_report_status, args=(worker, events, stop), daemon=True, name="status").start()

    worker = TrainingWorker(
        config, task,
        on_window=events.put,
        gather_payload=lambda epoch: sign_attestation(spec.account, spec.origin, epoch, worker.peer_id),
        on_ready=on_ready,
        tracker_epoch=lambda: spec.tracker_epoch.value,
    )
    def linger() -> None:
        # Training is over; serve the states our reports name until the supervisor has seen them checked.
        events.put(WorkerDone())
        if not stop.wait_for_another(MAX_LINGER):
            logger.warning("left after %.0fs without word that our reports were checked", MAX_LINGER)

    worker.run(stop, max_windows=spec.max_windows, linger=linger)


def _report_status(worker: TrainingWorker, events, stop) -> None:
    while not stop.is_set():
        try:
            progress = worker.optimizer.tracker.global_progress
            events.put(WorkerStatus(epoch=worker.local_epoch, swarm_epoch=progress.epoch, num_peers=progress.num_peers,
                                    samples_per_second=worker.optimizer.tracker.performance_ema.samples_per_second))
        except AttributeError:  # shutting down
            return
        stop.wait(STATUS_INTERVAL)
