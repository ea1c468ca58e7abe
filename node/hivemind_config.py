"""How potluck runs hivemind: the swarm's settings, taken from its manifest once, and the Optimizer built
from them. The training worker and the verifier build theirs here, so they cannot disagree on how the
swarm averages; each default lives here and nowhere else (a swarm's own values are in its swarm.toml).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from hivemind.compression import CompressionBase, Float16Compression, NoCompression, Uniform8BitQuantization
from hivemind.optim import Optimizer

from potluck.errors import ConfigError
from potluck.node.attesting_averager import AttestingGradientAverager
from potluck.proto.manifest_pb2 import Manifest

COMPRESSIONS: dict[str, Callable[[], CompressionBase]] = {
    "none": NoCompression,
    "float16": Float16Compression,
    "uniform8bit": Uniform8BitQuantization,
}
# hivemind needs request_timeout < matchmaking_time; a slow peer should not hold a round longer than this.
MAX_REQUEST_TIMEOUT = 3.0


@dataclass(frozen=True, kw_only=True)
class HivemindConfig:
    """One swarm's hivemind settings. Timeouts are in seconds."""

    run_id: str  # names the swarm's DHT keys; shared by every peer of the swarm
    initial_peers: tuple[str, ...]  # multiaddrs of peers to join through (the lead's bootstrap peer)
    target_batch_size: int  # samples the swarm accumulates per epoch, over all peers
    learning_rate: float  # of the Adam optimizer every peer runs
    matchmaking_time: float  # how long a peer waits to gather a group for an averaging round
    averaging_timeout: float  # how long an averaging round may take once its group formed
    compression: str  # how gradients and parameters travel in averaging rounds: one of COMPRESSIONS
    load_state_timeout: float = 600.0  # how long a late peer may take to download the swarm's state
    average_state_every: int = 1  # epochs between rounds that average parameters and optimizer state

    def __post_init__(self) -> None:
        for name in ("target_batch_size", "average_state_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name}: must be a positive integer (got {value!r})")
        for name in ("learning_rate", "matchmaking_time", "averaging_timeout", "load_state_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name}: must be a positive number (got {value!r})")
        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"compression: must be one of {' | '.join(COMPRESSIONS)} (got {self.compression!r})")
        if not self.run_id or "." in self.run_id:
            raise ConfigError(f"run_id: must be a non-empty string without '.' (got {self.run_id!r})")

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> HivemindConfig:
        h = manifest.hivemind
        return cls(run_id=h.run_id, initial_peers=tuple(manifest.bootstrap_peers),
                   target_batch_size=h.target_batch_size, learning_rate=h.learning_rate,
                   matchmaking_time=h.matchmaking_time, averaging_timeout=h.averaging_timeout,
                   compression=h.compression)

    @property
    def request_timeout(self) -> float:
        return min(MAX_REQUEST_TIMEOUT, self.matchmaking_time / 2)


def make_optimizer(config: HivemindConfig, *, dht, params: Iterable[torch.nn.Parameter],
                   payload_for_round: Callable[[], tuple[int, bytes]], batch_size_per_step: int,
                   optimizer_class: Callable[..., Optimizer] = Optimizer) -> Optimizer:
    """The swarm's hivemind.Optimizer for one peer; every averaging round gathers `payload_for_round()`.

    `use_local_updates=False` and synchronous state averaging keep the parameters fixed within an
    epoch, which is what lets a verifier recompute a window from the state it started at.
    """
    return optimizer_class(
        dht=dht,
        run_id=config.run_id,
        target_batch_size=config.target_batch_size,
        batch_size_per_step=batch_size_per_step,
        params=params,
        optimizer=functools.partial(torch.optim.Adam, lr=config.learning_rate),
        matchmaking_time=config.matchmaking_time,
        averaging_timeout=config.averaging_timeout,
        load_state_timeout=config.load_state_timeout,
        use_local_updates=False,
        delay_state_averaging=False,
        average_state_every=config.average_state_every,
        grad_compression=COMPRESSIONS[config.compression](),
        state_averaging_compression=COMPRESSIONS[config.compression](),
        # hivemind forwards averager_opts to the state averager only; the factory carries them to the other.
        # The same averager class on every peer also names the RPCs a verifier downloads states with.
        grad_averager_factory=functools.partial(AttestingGradientAverager, payload_for_round=payload_for_round,
                                                request_timeout=config.request_timeout),
        averager_opts=dict(request_timeout=config.request_timeout),
        # hivemind reads the DHT's client_mode only when this is not None (optimizer.py, 1.1.12);
        # left as None, a client-mode peer later tries to share state and raises.
        client_mode=dht.client_mode,
    )
