"""How a node obtains what it trusts: the signed manifest (lead key pinned or remembered on first
use), a TLS channel to the tracker the manifest pins, the log key it pins, and every dataset shard,
checked by sha256 before use."""

from __future__ import annotations

import logging
from pathlib import Path

from potluck.atomic_file import write_file_atomically
from potluck.datasets import check_shard, find_shard
from potluck.errors import ConfigError, VerificationError
from potluck.manifest import SignedManifest, read_manifest_file, verify_manifest
from potluck.tracker_client import TrackerClient

logger = logging.getLogger(__name__)

SHARD_TIMEOUT = 600.0


def obtain_swarm(*, tracker: str | None, tracker_cert: str | None, manifest_path: Path | None,
                 lead_key: bytes | None, state_dir: Path,
                 rpc_timeout: float) -> tuple[SignedManifest, TrackerClient, str]:
    """The verified manifest (from `manifest_path`, else from the tracker), a client of its tracker, and the log key.

    What the lead signed is what is trusted: the tracker must present the TLS certificate the manifest
    pins (else it is another server, or a man-in-the-middle), and receipts are checked against the log
    key the manifest pins, never one the tracker merely sends, since an acknowledged report is deleted
    from the node's queue of what it is owed.
    """
    response = None
    if manifest_path is not None:
        signed = read_manifest_file(manifest_path)
        check_lead(signed, lead_key, state_dir / "lead.pub")
        m = signed.manifest
        client = TrackerClient(tracker or m.tracker_address, rpc_timeout=rpc_timeout,
                               tls_sha256=tracker_cert or m.tracker_tls_sha256 or None)
    else:
        client = TrackerClient(tracker, rpc_timeout=rpc_timeout, tls_sha256=tracker_cert)
        response = client.manifest()
        try:
            signed = verify_manifest(response.signed_manifest)
        except VerificationError as e:
            raise VerificationError(f"manifest from tracker {client.address}: {e}") from None
        check_lead(signed, lead_key, state_dir / "lead.pub")
        m = signed.manifest
    if m.tracker_tls_sha256 and client.tls_sha256 != m.tracker_tls_sha256:
        raise VerificationError(
            f"tracker {client.address} presented TLS certificate sha256:{client.tls_sha256}, but the lead's manifest "
            f"pins sha256:{m.tracker_tls_sha256}; refusing it (another server, or a man-in-the-middle)")
    if m.log_key:
        return signed, client, m.log_key
    logger.warning("the manifest pins no log key: trusting the one tracker %s sends on first use", client.address)
    return signed, client, (response or client.manifest()).log_key


def check_lead(signed: SignedManifest, pinned: bytes | None, remembered_file: Path) -> None:
    """The manifest must be signed by the pinned lead, or by the one remembered on first use."""
    signer = signed.lead_key.hex()
    if pinned is not None:
        if signed.lead_key != pinned:
            raise VerificationError(f"bad manifest signature: signed by {signer}, expected lead {pinned.hex()}")
        return
    if remembered_file.exists():
        remembered = remembered_file.read_text().strip()
        if remembered != signer:
            raise VerificationError(f"bad manifest signature: signed by {signer}, but this node trusts lead "
                                    f"{remembered} (remembered in {remembered_file}; pass --lead-key to change)")
        return
    logger.warning("trusting lead %s on first use (remembered in %s; pin it with --lead-key)", signer,
                   remembered_file)
    remembered_file.parent.mkdir(parents=True, exist_ok=True)
    remembered_file.write_text(signer + "\n")


def obtain_shards(signed: SignedManifest, *, data_dirs: list[Path], cache_dir: Path,
                  client: TrackerClient | None) -> list[tuple[str, bytes]]:
    """Every dataset shard the manifest names, read locally or fetched from the tracker, checked by sha256."""
    shards = []
    directories = [*data_dirs, cache_dir]
    for shard in signed.manifest.datasets:
        path = find_shard(shard, directories)
        if path is not None:
            data = path.read_bytes()
            check_shard(data, shard, f"dataset mismatch: {path}")
        elif client is None:
            raise ConfigError(f"dataset shard {shard.name} ({shard.sha256[:12]}…) is not in "
                              f"{', '.join(map(str, directories))} and no --tracker was given")
        else:
            data = client.fetch_shard(shard.sha256, SHARD_TIMEOUT)
            check_shard(data, shard, f"dataset mismatch: shard {shard.name} from tracker {client.address}")
            cache_dir.mkdir(parents=True, exist_ok=True)
            write_file_atomically(cache_dir / shard.sha256, data)
        shards.append((shard.sha256, data))
    return shards
