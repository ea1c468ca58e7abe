"""What the tracker and its verifier process send each other (besides the `Verdict`, the policy's)."""

from __future__ import annotations

from dataclasses import dataclass

from potluck.node.hivemind_config import HivemindConfig


@dataclass(frozen=True, kw_only=True)
class VerifierSpec:
    """What the verifier process needs to follow the swarm and replay its recipes."""

    origin: str
    hivemind: HivemindConfig
    data_seed: bytes
    task_name: str
    task_params: dict
    shards: tuple[tuple[str, bytes], ...]
    checkpoint_dir: str | None = None  # the checkpoint keeper saves the swarm's model here...
    checkpoint_every: int = 5  # ... every this many epochs
    fetch_daemon: str | None = None  # the p2p daemon states are downloaded through (state_fetcher.py)
    eval_shards: tuple[tuple[str, bytes], ...] = ()  # held out: the swarm's model is evaluated on them
    initial_state: bytes | None = None  # a resumed swarm's starting checkpoint (safetensors)


@dataclass(frozen=True)
class Job:
    """Tracker to verifier: check this grant."""

    index: int  # ledger index of the grant
    envelope: bytes  # the report, as signed
    segments: tuple[int, ...]  # segments the tracker drew for recomputation, most telling first
    sampled: bool  # drawn for stage (c); otherwise stage (b) only, unless it raises suspicion
    # The account has a report proven by recomputation: its state downloads never wait behind new
    # accounts' (tracker/verifier/states.py), which anyone can make by the thousand.
    established: bool = False


@dataclass(frozen=True)
class VerifierReady:
    """Verifier to tracker: it has joined the swarm's DHT and takes jobs."""


@dataclass(frozen=True)
class HeldOutLoss:
    """Verifier to tracker: the swarm's model's loss on the held-out shards at `epoch` (held_out.py)."""

    epoch: int
    loss: float


@dataclass(frozen=True)
class Spread:
    """Verifier to tracker: how far apart the volunteers' parameters lay at `epoch`."""

    epoch: int
    num_peers: int  # reports whose starting states were compared
    relative: float  # the largest distance from their mean, relative to the mean's norm
