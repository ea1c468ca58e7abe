"""The training worker: one hivemind peer that trains a task and describes each contribution window.

A contribution window is one hivemind epoch as this peer saw it: the micro-batches it accumulated
from the model state it entered the epoch with, up to the gradient round that closed the epoch.
Because `use_local_updates=False` and state averaging is synchronous, the parameters do not move
inside a window, so a verifier holding the window's starting state can recompute every loss and
every segment's gradient sketch.

Run `TrainingWorker.run` in the main thread of a process of its own (hivemind.Optimizer installs
signal handlers and leaves SIGINT ignored); stop it by setting the event, or kill its process group.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hivemind
import torch
from hivemind.optim import Optimizer

from potluck.errors import ConfigError, PotluckError
from potluck.node.attesting_averager import AttestingGradientAverager
from potluck.node.hivemind_config import HivemindConfig, make_optimizer
from potluck.node.progress_bound import BoundedProgressTracker
from potluck.node.rejoin import Rejoiner
from potluck.node.sketch import SketchProjector, sketch_seed, state_digest
from potluck.node.state_server import StateServer
from potluck.node.tasks.base import TaskBase
from potluck.proto.wire import SKETCH_DIM, STEPS_PER_SKETCH

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Everything a training worker needs besides the task: the swarm's hivemind settings, and this peer's."""

    hivemind: HivemindConfig
    data_seed: bytes  # the swarm's seed: with the account, epoch and step it fixes every batch
    account_id: str
    batch_size_per_step: int
    host_maddrs: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",)
    announce_maddrs: Sequence[str] = ()
    client_mode: bool = False  # behind NAT: make no DHT or averaging connections inbound
    identity_path: str | None = None  # the libp2p key file, so the PeerID survives restarts
    kept_states_dir: str | None = None  # where kept start states go, so a restarted worker serves them too
    device: str = "cpu"

    def __post_init__(self) -> None:
        value = self.batch_size_per_step
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"batch_size_per_step: must be a positive integer (got {value!r})")
        if not self.data_seed:
            raise ConfigError("data_seed: must be non-empty bytes")
        if self.client_mode and not self.hivemind.initial_peers:
            raise ConfigError("initial_peers: a client-mode peer needs at least one peer to connect to")


@dataclass(frozen=True, kw_only=True)
class WindowStats:
    """What one peer did in one contribution window (one hivemind epoch)."""

    epoch: int
    account_id: str
    peer_id: str
    batch_size: int
    samples: int
    tokens: int
    # losses[i] is the loss on make_batch(data_seed, account_id, epoch, i, batch_size) at the start state.
    losses: tuple[float, ...]
    # One sketch per segment of STEPS_PER_SKETCH micro-batches, concatenated: the segment's summed gradient
    # projected (SKETCH_DIM values) with the window's projection, seeded by sketch_seed(data_seed, account_id, epoch).
    sketch: tuple[float, ...]
    start_state_digest: bytes
    averaged: bool
    # Groupmates other than us in the gradient round that closed the epoch: PeerID -> gathered bytes.
    groupmates: dict[str, bytes | None] = field(default_factory=dict)
    averaging_error: str | None = None
    started_at: float
    wall_time: float
    device_class: str


class TrainingWorker:
    """Trains `task` as one peer of a hivemind swarm and reports each contribution window.

    :param on_window: called in the training thread with each closed window's WindowStats
      (use `queue.put` for a queue); the model then holds the next window's starting state.
    :param gather_payload: epoch -> bytes sent to groupmates in that epoch's gradient round
      (e.g. a signed attestation); default sends b"".
    :param on_ready: called once the peer has joined and, if late, loaded the swarm's state.
    :param tracker_epoch: the newest epoch the tracker has admitted a report of, as last heard (0 if never):
      progress records more than EPOCH_SLACK beyond it and beyond this peer's epoch are ignored.
    """

    def __init__(
        self,
        config: TrainingConfig,
        task: TaskBase,
        *,
        on_window: Callable[[WindowStats], None] | None = None,
        gather_payload: Callable[[int], bytes] | None = None,
        on_ready: Callable[[TrainingWorker], None] | None = None,
        tracker_epoch: Callable[[], int] = lambda: 0,
    ) -> None:
        self.config = config
        self.task = task
        self.device = torch.device(config.device)
        self.device_class = describe_device(self.device)
        self._on_window = on_window
        self._gather_payload = gather_payload or (lambda epoch: b"")
        self._on_ready = on_ready
        self._tracker_epoch = tracker_epoch
        self.model: torch.nn.Module | None = None
        self.dht: hivemind.DHT | None = None
        self.optimizer: _TrainingOptimizer | None = None
        self.state_server: StateServer | None = None

    @property
    def peer_id(self) -> str:
        return self.dht.peer_id.to_base58()

    @property
    def visible_maddrs(self) -> list[str]:
        return [str(maddr) for maddr in self.dht.get_visible_maddrs()]

    @property
    def local_epoch(self) -> int:
        return self.optimizer.local_epoch

    def run(self, stop: threading.Event | None = None, *, max_windows: int | None = None,
            linger: Callable[[], None] | None = None) -> None:
        """Join the swarm and train until `stop` is set (checked after every step) or `max_windows` closed.

        Then `linger` is called, once the peer has left averaging but still serves its kept states: a
        drawn report is checked on the state it names, asked of this peer (node/state_server.py)."""
        if threading.current_thread() is not threading.main_thread():
            raise PotluckError("the training worker must run in its process's main thread (hivemind needs it)")
        stop = stop or threading.Event()
        config = self.config
        self.dht = hivemind.DHT(
            initial_peers=list(config.hivemind.initial_peers),
            host_maddrs=list(config.host_maddrs),
            announce_maddrs=list(config.announce_maddrs) or None,
            client_mode=config.client_mode,
            identity_path=config.identity_path,
            start=True,
        )
        rejoiner = Rejoiner(self.dht, config.hivemind.initial_peers)  # back in the swarm after a dropped link
        try:
            self.state_server = StateServer(self.dht, config.hivemind.run_id, directory=(
                None if config.kept_states_dir is None else Path(config.kept_states_dir)))
            self.model = self.task.build_model().to(self.device)
            self.optimizer = self._make_optimizer()
            try:
                self._join_swarm()
                if self._on_ready is not None:
                    self._on_ready(self)
                self._train(stop, max_windows)
            finally:
                self.optimizer.shutdown()
            if linger is not None:
                linger()
        finally:
            rejoiner.close()
            if self.state_server is not None:
                self.state_server.close()
            self.dht.shutdown()

    def _make_optimizer(self) -> _TrainingOptimizer:
        return make_optimizer(self.config.hivemind, dht=self.dht, params=self.model.parameters(),
                              payload_for_round=self._payload_for_round,
                              batch_size_per_step=self.config.batch_size_per_step,
                              optimizer_class=functools.partial(_TrainingOptimizer, tracker_epoch=self._tracker_epoch))

    def _payload_for_round(self) -> tuple[int, bytes]:
        epoch = self.optimizer.local_epoch
        return epoch, self._gather_payload(epoch)

    def _join_swarm(self) -> None:
        optimizer = self.optimizer
        if optimizer.tracker.global_epoch > optimizer.local_epoch:
            logger.info("swarm is at epoch %d: loading its state from peers", optimizer.tracker.global_epoch)
            optimizer.load_state_from_peers()
            logger.info("loaded state from peers: now at epoch %d", optimizer.local_epoch)

    def _train(self, stop: threading.Event, max_windows: int | None) -> None:
        config, task, model, optimizer = self.config, self.task, self.model, self.optimizer
        windows_closed = 0
        window = self._begin_window()
        while not stop.is_set() and (max_windows is None or windows_closed < max_windows):
            batch = task.make_batch(
                config.data_seed, config.account_id, window.epoch, window.num_steps, config.batch_size_per_step
            )
            optimizer.zero_grad()
            with torch.autocast(self.device.type, dtype=task.cuda_autocast or torch.float32,
                                enabled=self.device.type == "cuda" and task.cuda_autocast is not None):
                loss = task.loss(model, task.batch_to(batch, self.device))
            loss.backward()
            window.losses.append(loss.detach())

            state_loads = optimizer.state_loads
            optimizer.window = window  # sketches each segment as the averager takes its micro-batches
            optimizer.step()
            if optimizer.state_loads != state_loads:
                # We were out of sync: hivemind dropped our gradients and downloaded the swarm's state.
                logger.info("window for epoch %d discarded: loaded state from peers", window.epoch)
                window = self._begin_window()
            elif optimizer.local_epoch != window.epoch:
                stats = self._close(window)
                windows_closed += 1
                window = self._begin_window()
                if self._on_window is not None:
                    self._on_window(stats)

    def _begin_window(self) -> _Window:
        window = _Window.begin(self.optimizer.local_epoch, self.model, self.config)
        self.state_server.keep(window.start_digest, self.model)  # a drawn report of it is checked on this state
        return window

    def _close(self, window: _Window) -> WindowStats:
        config = self.config
        outcome = self.optimizer.grad_averager.round_outcome(window.epoch)
        if not outcome.succeeded:
            logger.info("epoch %d: trained on local gradients only (%s)", window.epoch, outcome.error)
        samples = window.num_steps * config.batch_size_per_step
        return WindowStats(
            epoch=window.epoch,
            account_id=config.account_id,
            peer_id=self.peer_id,
            batch_size=config.batch_size_per_step,
            samples=samples,
            tokens=samples * self.task.tokens_per_sample(),
            losses=tuple(torch.stack(window.losses).tolist()),
            sketch=tuple(window.sketches),
            start_state_digest=window.start_digest,
            averaged=outcome.succeeded,
            groupmates=outcome.groupmates,
            averaging_error=outcome.error,
            started_at=window.started_at,
            wall_time=time.perf_counter() - window.started_perf,
            device_class=self.device_class,
        )


class _Window:
    """The window being accumulated: its losses and one gradient sketch per segment of micro-batches.

    Losses stay tensors until the window closes (no device sync per step). Each segment's gradient sum
    is sketched from the averager's segment buffer, which is then folded into hivemind's accumulators.
    """

    def __init__(self, epoch: int, start_digest: bytes, projector: SketchProjector) -> None:
        self.epoch = epoch
        self.start_digest = start_digest
        self.projector = projector
        self.losses: list[torch.Tensor] = []
        self.sketches: list[float] = []
        self._sketched_steps = 0
        self.started_at = time.time()
        self.started_perf = time.perf_counter()

    @classmethod
    def begin(cls, epoch: int, model: torch.nn.Module, config: TrainingConfig) -> _Window:
        seed = sketch_seed(config.data_seed, config.account_id, epoch)
        return cls(epoch, state_digest(model), SketchProjector(seed, SKETCH_DIM))

    @property
    def num_steps(self) -> int:
        return len(self.losses)

    def on_accumulated(self, averager: AttestingGradientAverager, window_ends: bool) -> None:
        """The averager took this window's latest micro-batch; sketch the segment if it ends here."""
        steps = self.num_steps
        if steps > self._sketched_steps and (window_ends or steps - self._sketched_steps >= STEPS_PER_SKETCH):
            self.sketches.extend(self.projector.sketch(averager.segment_sum()))
            averager.fold_segment()
            self._sketched_steps = steps


class _TrainingOptimizer(Optimizer):
    """hivemind.Optimizer that shows the worker's window each micro-batch as the averager takes it,
    counts state downloads, so the worker can tell a reload from an epoch step, and reads the swarm's
    epoch only from progress records within the tracker's bound (node/progress_bound.py).

    The two hooks are the points of hivemind.Optimizer.step (1.1.12) where a segment may end: right
    after a micro-batch is accumulated, and when the epoch is about to close (its gradients are then
    averaged and reset).
    """

    state_loads = 0
    window: _Window | None = None

    def __init__(self, *args, tracker_epoch: Callable[[], int], **kwargs) -> None:
        self._tracker_epoch = tracker_epoch  # read by _make_progress_tracker, which hivemind calls in __init__
        super().__init__(*args, **kwargs)

    def _make_progress_tracker(self, target_batch_size: int, **kwargs) -> BoundedProgressTracker:
        return BoundedProgressTracker(dht=self.dht, prefix=self.run_id, target_batch_size=target_batch_size,
                                      client_mode=self.client_mode, status_loglevel=self.status_loglevel, start=True,
                                      tracker_epoch=self._tracker_epoch, **kwargs)

    def load_state_from_peers(self, **kwargs) -> None:
        super().load_state_from_peers(**kwargs)
        self.state_loads += 1

    def _check_and_accumulate_gradients(self, batch_size: int, grad_scaler) -> bool:
        valid = super()._check_and_accumulate_gradients(batch_size, grad_scaler)
        if valid and self.window is not None:
            self.window.on_accumulated(self.grad_averager, window_ends=False)
        return valid

    def _update_global_epoch(self, grad_scaler) -> None:
        if self.window is not None:
            self.window.on_accumulated(self.grad_averager, window_ends=True)
        super()._update_global_epoch(grad_scaler)


def describe_device(device: torch.device) -> str:
    """A coarse device class for reports: "cpu", or "cuda:<device name>"."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type
