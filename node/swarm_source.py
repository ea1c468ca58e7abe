"""How a node obtains what it trusts: the signed manifest (lead key pinned or remembered on first
use), the tracker's log key, and every dataset shard, checked by sha256 before use."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import grpc

from potluck.atomic_file import write_file_atomically
from potluck.errors import ConfigError, PotluckError, VerificationError
from potluck.manifest import SignedManifest, read_manifest_file, verify_manifest
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import TrackerStub

logger = logging.getLogger(__name__)

CALL_TIMEOUT = 15.0
SHARD_TIMEOUT = 600.0


class TrackerUnreachable(PotluckError):
    pass


def call(what: str, tracker: str, method, request, timeout: float = CALL_TIMEOUT):
    """One unary call, with its failure as a one-line error naming the tracker."""
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise TrackerUnreachable(f"tracker {tracker} unreachable ({what}): {e.details()}") from None
        raise PotluckError(f"tracker {tracker} refused {what}: {e.code().name}: {e.details()}") from None


def obtain_manifest(*, tracker: str | None, manifest_path: Path | None, stub: TrackerStub | None,
                    lead_key: bytes | None, state_dir: Path) -> tuple[SignedManifest, str | None]:
    """The verified manifest, and the log key when the tracker served one."""
    log_key = None
    if manifest_path is not None:
        signed = read_manifest_file(manifest_path)
    else:
        response = call("the manifest", tracker, stub.GetManifest, pb.GetManifestRequest())
        try:
            signed = verify_manifest(response.signed_manifest)
        except VerificationError as e:
            raise VerificationError(f"manifest from tracker {tracker}: {e}") from None
        log_key = response.log_key or None
    check_lead(signed, lead_key, state_dir / "lead.pub")
    return signed, log_key


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


def obtain_shards(signed: SignedManifest, *, data_dirs: list[Path], cache_dir: Path, tracker: str | None,
                  stub: TrackerStub | None) -> list[tuple[str, bytes]]:
    """Every dataset shard the manifest names, read locally or fetched from the tracker, checked by sha256."""
    shards = []
    for shard in signed.manifest.datasets:
        data = _local_shard(shard, data_dirs + [cache_dir])
        if data is None:
            if stub is None:
                raise ConfigError(f"dataset shard {shard.name} ({shard.sha256[:12]}…) is not in "
                                  f"{', '.join(map(str, data_dirs + [cache_dir]))} and no --tracker was given")
            data = _fetch_shard(shard, tracker, stub)
            cache_dir.mkdir(parents=True, exist_ok=True)
            write_file_atomically(cache_dir / shard.sha256, data)
        shards.append((shard.sha256, data))
    return shards


def _local_shard(shard, directories: list[Path]) -> bytes | None:
    for directory in directories:
        for path in (directory / shard.sha256, directory / shard.name):
            if path.is_file():
                data = path.read_bytes()
                _check(shard, data, str(path))
                return data
    return None


def _fetch_shard(shard, tracker: str, stub: TrackerStub) -> bytes:
    try:
        data = b"".join(chunk.data for chunk in stub.FetchShard(pb.FetchShardRequest(sha256=shard.sha256),
                                                                  timeout=SHARD_TIMEOUT))
    except grpc.RpcError as e:
        raise TrackerUnreachable(f"tracker {tracker}: cannot fetch dataset shard {shard.name}: "
                                 f"{e.code().name}: {e.details()}") from None
    _check(shard, data, f"shard {shard.name} from tracker {tracker}")
    return data


def _check(shard, data: bytes, where: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != shard.sha256:
        raise VerificationError(f"dataset hash mismatch: {where}: expected sha256 {shard.sha256}, got {digest}")
