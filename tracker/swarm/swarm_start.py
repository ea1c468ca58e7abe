"""`potluck swarm start` and `potluck tracker serve`: what a project lead runs.

`swarm start` brings up the bootstrap DHT peer (stable identity and port), fills its addresses and
the tracker's into the manifest, signs it, starts the averaging helper volunteers behind NAT need
(aux_peer.py; not for a swarm on loopback) and the tracker, and writes `swarm.json` and `log.pub`
for volunteers and auditors. SIGINT/SIGTERM stop everything; nothing is left running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from potluck.address import advertised_host, check_host_port, is_loopback, tcp_maddr
from potluck.atomic_file import write_file_atomically
from potluck.datasets import find_shard
from potluck.errors import ConfigError
from potluck.identity import AccountKey
from potluck.manifest import SignedManifest, sign_manifest, verify_manifest
from potluck.proto.manifest_pb2 import DatasetShard, Manifest
from potluck.tracker.swarm.aux_peer import AUX_STOP_TIMEOUT, start_aux_peer
from potluck.tracker.swarm.bootstrap_peer import BOOTSTRAP_STOP_TIMEOUT, start_bootstrap_peer

if TYPE_CHECKING:
    from potluck.tracker.tracker import Tracker

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SwarmStartConfig:
    """`potluck swarm start`'s options, one field per flag."""

    state_dir: Path
    db: str | None  # default: state_dir/ledger.sqlite
    listen: str  # the tracker's HOST:PORT
    dht_port: int
    # What other hosts reach the tracker and the bootstrap peer at: detected for a wildcard --listen
    # (potluck/address.py) unless given; signed into the manifest and printed in the join line.
    public_host: str | None = None
    announce_maddrs: tuple[str, ...] = ()  # the bootstrap peer's, where the lead knows better (a port forward)
    # The averaging helper for volunteers behind NAT (aux_peer.py), on this TCP port; None: none.
    aux_port: int | None = None
    data_dirs: tuple[Path, ...] = ()  # where the manifest's dataset shards are, looked for in order
    checkpoint_every: int = 5
    # A checkpoint the swarm's model starts from instead of init_seed (of the same task and parameters):
    # signed into the manifest as a dataset of kind "init", served to volunteers like any shard.
    resume: Path | None = None


def shards_in(data_dirs: Sequence[Path], manifest: Manifest) -> dict[str, Path]:
    """The dataset shards the tracker serves, found by sha256 or name in `data_dirs`."""
    found = {}
    for shard in manifest.datasets:
        path = find_shard(shard, list(data_dirs))
        if path is None:
            where = ", ".join(map(str, data_dirs)) or "(none given)"
            raise ConfigError(f"dataset shard {shard.name}: not found in --data-dir {where} (by sha256 or name)")
        if (size := path.stat().st_size) != shard.size_bytes:  # the owners' data credit is computed from it
            raise ConfigError(f"dataset shard {shard.name}: {path} holds {size} bytes, swarm.toml says size_bytes = "
                              f"{shard.size_bytes}")
        found[shard.sha256] = path
    return found


async def serve_until_signalled(tracker: Tracker) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        logger.info("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await tracker.stop()


def run_swarm(manifest: Manifest, lead: AccountKey, config: SwarmStartConfig, *, on_ready=None) -> None:
    """Start the bootstrap peer and the tracker; serve until SIGINT/SIGTERM."""
    host, port = check_host_port(config.listen, "--listen").rsplit(":", 1)
    public = advertised_host(host, config.public_host)
    if is_loopback(public):
        logger.warning("the swarm listens on %s: only this machine can join it (--listen 0.0.0.0:%s lets other hosts "
                       "join)", host, port)
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    manifest = Manifest.FromString(manifest.SerializeToString())  # filled in below: the caller's is left as it is
    shards = shards_in(config.data_dirs, manifest)
    if config.resume is not None:
        shards[resumed_from(config.resume, manifest)] = config.resume
    announce = list(config.announce_maddrs) or [tcp_maddr(public, config.dht_port)]
    bootstrap, peer = start_bootstrap_peer(config.state_dir, host, config.dht_port, announce)
    try:
        del manifest.bootstrap_peers[:]
        manifest.bootstrap_peers.extend(peer.maddrs)
        manifest.tracker_address = f"{public}:{port}"
        pin_tracker(manifest, config.state_dir)
        signed = verify_manifest(sign_manifest(manifest, lead))
        write_file_atomically(config.state_dir / "swarm.manifest", signed.envelope)
        aux = None
        if config.aux_port is not None:
            aux = start_aux_peer(signed.envelope, host, config.aux_port, [tcp_maddr(public, config.aux_port)])
        try:
            asyncio.run(_serve(signed, config, shards, peer.daemon, on_ready))
        finally:
            if aux is not None:
                aux.stop(AUX_STOP_TIMEOUT)
    finally:
        bootstrap.stop(BOOTSTRAP_STOP_TIMEOUT)


def pin_tracker(manifest: Manifest, state_dir: Path) -> None:
    """Sign in the log key and TLS certificate of the tracker that will run from `state_dir` (made now if new)."""
    from potluck.tlog import verifier_key_text
    from potluck.tls import load_or_create_certificate
    from potluck.tracker.ledger.logkey import load_or_create_log_key

    manifest.log_key = verifier_key_text(manifest.origin, load_or_create_log_key(state_dir, manifest.origin).verify_key)
    manifest.tracker_tls_sha256 = load_or_create_certificate(state_dir).sha256


def resumed_from(path: Path, manifest: Manifest) -> str:
    """Add the checkpoint at `path` to `manifest` as the state its model starts from; return its sha256."""
    import hashlib

    from potluck.manifest import param_dict
    from potluck.node.checkpoint_file import read_checkpoint

    checkpoint = read_checkpoint(path)
    if checkpoint.task != manifest.task.name or checkpoint.params != param_dict(manifest.task):
        raise ConfigError(f"--resume {path}: a checkpoint of task {checkpoint.task} {checkpoint.params}, not of this "
                          f"swarm's {manifest.task.name} {param_dict(manifest.task)}")
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    manifest.datasets.append(DatasetShard(name=path.name, sha256=sha256, size_bytes=len(data), kind="init",
                                          license="the swarm's own model", owner=f"swarm {checkpoint.origin}"))
    logger.info("the swarm's model starts from %s (epoch %d of swarm %s)", path, checkpoint.epoch, checkpoint.origin)
    return sha256


async def _serve(signed: SignedManifest, config: SwarmStartConfig, shards, fetch_daemon: str, on_ready) -> None:
    from potluck.tracker.tracker import Tracker, TrackerConfig  # here: `swarm init` and `sign` need not load it

    tracker = await Tracker.start(signed, TrackerConfig(
        state_dir=config.state_dir, db=config.db or str(config.state_dir / "ledger.sqlite"), listen=config.listen,
        shards=shards, checkpoint_every=config.checkpoint_every, fetch_daemon=fetch_daemon))
    info = {"tracker": signed.manifest.tracker_address, "listen": config.listen,
            "initial_peers": list(signed.manifest.bootstrap_peers),
            "log_key": tracker.log_key, "tls_sha256": tracker.tls_sha256,
            "manifest_id": signed.manifest_id.hex(), "origin": signed.origin,
            "lead": signed.lead_key.hex()}
    # Readers wait for this file to appear: it must never be seen half written.
    write_file_atomically(config.state_dir / "swarm.json", (json.dumps(info, indent=2) + "\n").encode())
    if on_ready is not None:
        on_ready(info)
    await serve_until_signalled(tracker)
