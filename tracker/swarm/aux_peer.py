"""The swarm's averaging helper on the lead's public host: what volunteers behind NAT average through.

A volunteer behind NAT can dial out but cannot be dialled, so it joins averaging in hivemind's
client mode: it sends its gradients and receives the average, but reduces no part of them. A group
of clients alone has nobody to reduce, and its round fails ("could not find a group"; measured:
0 of 10 rounds with three NAT'd volunteers). This peer is hivemind's auxiliary peer: it computes no
gradients and contributes no weight, joins every gradient and state round, and reduces the parts
the clients send it. It is no client itself, so it takes a share of public volunteers' rounds too.
Measured (benchmarks/nat_averaging.py, three volunteers, a 285 KB model): 7.6 CPU s a round with three
NAT'd volunteers, 2.7 with three public ones; through its port about 15 model-sizes in and 20 out a
round with NAT'd volunteers (averaging and its share of DHT requests).

It runs in a process group of its own, like the bootstrap peer, on a fixed port of the lead's host.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from potluck.address import tcp_maddr
from potluck.errors import ConfigError
from potluck.group_process import GroupProcess

logger = logging.getLogger(__name__)

AUX_START_TIMEOUT = 60.0
AUX_STOP_TIMEOUT = 15.0
STEP_INTERVAL = 0.1  # seconds between hivemind steps: it only checks whether a round is due


@dataclass(frozen=True)
class AuxReady:
    maddrs: list[str]


@dataclass(frozen=True)
class AuxFailed:
    reason: str


def start_aux_peer(manifest_bytes: bytes, host: str, port: int, announce_maddrs: list[str]) -> GroupProcess:
    """Start the auxiliary averaging peer for the signed manifest `manifest_bytes` on `host`:`port`."""
    peer = GroupProcess(_run_aux_peer, manifest_bytes, host, port, announce_maddrs, name="potluck-aux").start()
    event = peer.next_event(AUX_START_TIMEOUT)
    if not isinstance(event, AuxReady):
        peer.kill()
        why = event.reason if isinstance(event, AuxFailed) else f"no answer within {AUX_START_TIMEOUT:.0f}s"
        raise ConfigError(f"--aux-port {port}: cannot start the averaging helper on {host} ({why})")
    logger.info("averaging helper for volunteers behind NAT: %s", ", ".join(event.maddrs))
    return peer


def _run_aux_peer(stop, events, manifest_bytes: bytes, host: str, port: int, announce_maddrs: list[str]) -> None:
    import functools

    import hivemind
    import torch
    from hivemind.optim import Optimizer

    from potluck.manifest import param_dict, verify_manifest
    from potluck.node.hivemind_config import HivemindConfig, make_optimizer
    from potluck.node.tasks import get_task

    torch.set_num_threads(1)
    manifest = verify_manifest(manifest_bytes).manifest
    config = HivemindConfig.from_manifest(manifest)
    try:
        dht = hivemind.DHT(initial_peers=list(config.initial_peers), host_maddrs=[tcp_maddr(host.strip("[]"), port)],
                           announce_maddrs=announce_maddrs or None, start=True)
    except Exception as e:  # hivemind reports a taken port as a generic daemon error
        events.put(AuxFailed(" ".join(str(e).split())[:300]))
        return
    try:
        # The model only gives the shapes of what is averaged: a text task builds it without its shards.
        model = get_task(manifest.task.name, param_dict(manifest.task)).build_model()
        optimizer = make_optimizer(config, dht=dht, params=model.parameters(), payload_for_round=lambda: (0, b""),
                                   batch_size_per_step=None,
                                   optimizer_class=functools.partial(Optimizer, auxiliary=True))
        events.put(AuxReady([f"{m}/p2p/{dht.peer_id.to_base58()}" for m in announce_maddrs]
                            or [str(m) for m in dht.get_visible_maddrs()]))
        try:
            while not stop.wait(STEP_INTERVAL):
                optimizer.step()
        finally:
            optimizer.shutdown()
    finally:
        dht.shutdown()

