"""`potluck swarm start` and `potluck tracker serve`: what a project lead runs.

`swarm start` brings up the bootstrap DHT peer (stable identity and port), fills its addresses and
the tracker's into the manifest, signs it, starts the tracker, and writes `swarm.json` and
`log.pub` for volunteers and auditors. SIGINT/SIGTERM stop everything; nothing is left running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from potluck.atomic_file import write_file_atomically
from potluck.errors import ConfigError
from potluck.group_process import GroupProcess
from potluck.manifest import SignedManifest, sign_manifest, verify_manifest
from potluck.node.binding import load_or_create_peer_identity
from potluck.node.identity import AccountKey
from potluck.proto.manifest_pb2 import Manifest
from potluck.swarm_config import check_host_port
from potluck.tracker.app import Tracker, TrackerConfig

logger = logging.getLogger(__name__)

BOOTSTRAP_START_TIMEOUT = 60.0
BOOTSTRAP_STOP_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class SwarmStartConfig:
    """`potluck swarm start`'s options, one field per flag."""

    state_dir: Path
    db: str | None  # default: state_dir/ledger.sqlite
    listen: str  # the tracker's HOST:PORT
    dht_port: int
    data_dir: Path | None
    checkpoint_every: int = 5


def start_bootstrap_peer(state_dir: Path, host: str, port: int) -> tuple[GroupProcess, list[str]]:
    """The swarm's first DHT peer, in a process group of its own, with an identity kept in the state dir
    so its address never changes. Returns the process and the peer's multiaddrs."""
    identity = load_or_create_peer_identity(state_dir / "bootstrap.key")
    peer = GroupProcess(_run_bootstrap_peer, str(identity.path), host, port, name="potluck-bootstrap").start()
    event = peer.next_event(BOOTSTRAP_START_TIMEOUT)
    if event is None or event[0] != "ready":
        peer.kill()
        why = event[1] if event else f"no answer within {BOOTSTRAP_START_TIMEOUT:.0f}s"
        raise ConfigError(f"--dht-port {port}: cannot start the bootstrap DHT peer on {host} ({why})")
    return peer, event[1]


def _run_bootstrap_peer(stop, events, identity_path: str, host: str, port: int) -> None:
    import hivemind

    try:
        dht = hivemind.DHT(start=True, host_maddrs=[f"/ip4/{host}/tcp/{port}"], identity_path=identity_path)
    except Exception as e:  # hivemind reports a taken port as a generic daemon error
        events.put(("failed", " ".join(str(e).split())[:300]))
        return
    events.put(("ready", [str(m) for m in dht.get_visible_maddrs()]))
    while not stop.wait(1.0):
        pass
    dht.shutdown()


def shards_in(data_dir: Path | None, manifest: Manifest) -> dict[str, Path]:
    """The dataset shards the tracker serves, found by sha256 or name in `data_dir`."""
    found = {}
    for shard in manifest.datasets:
        candidates = [data_dir / shard.sha256, data_dir / shard.name] if data_dir else []
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise ConfigError(f"dataset shard {shard.name}: not found in --data-dir {data_dir} (by sha256 or name)")
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
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    shards = shards_in(config.data_dir, manifest)
    bootstrap, maddrs = start_bootstrap_peer(config.state_dir, host, config.dht_port)
    try:
        manifest = Manifest.FromString(manifest.SerializeToString())
        del manifest.bootstrap_peers[:]
        manifest.bootstrap_peers.extend(maddrs)
        manifest.tracker_address = config.listen
        signed = verify_manifest(sign_manifest(manifest, lead))
        write_file_atomically(config.state_dir / "swarm.manifest", signed.envelope)
        asyncio.run(_serve(signed, config, shards, on_ready))
    finally:
        bootstrap.stop(BOOTSTRAP_STOP_TIMEOUT)


async def _serve(signed: SignedManifest, config: SwarmStartConfig, shards, on_ready) -> None:
    tracker = await Tracker.start(signed, TrackerConfig(
        state_dir=config.state_dir, db=config.db or str(config.state_dir / "ledger.sqlite"), listen=config.listen,
        shards=shards, checkpoint_every=config.checkpoint_every))
    info = {"tracker": config.listen, "initial_peers": list(signed.manifest.bootstrap_peers),
            "log_key": tracker.log_key, "manifest_id": signed.manifest_id.hex(), "origin": signed.origin,
            "lead": signed.lead_key.hex()}
    # Readers wait for this file to appear: it must never be seen half written.
    write_file_atomically(config.state_dir / "swarm.json", (json.dumps(info, indent=2) + "\n").encode())
    if on_ready is not None:
        on_ready(info)
    await serve_until_signalled(tracker)
