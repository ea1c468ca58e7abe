"""Signed swarm manifests: the lead's signature over the deterministic `Manifest` bytes.

A `.manifest` file is a serialized `SignedEnvelope` (purpose `potluck/manifest/v1`).
The manifest id is the sha256 of the serialized `Manifest` it carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from potluck.errors import ConfigError, VerificationError
from potluck.identity import AccountKey, parse_account_id
from potluck.proto.manifest_pb2 import DatasetShard, Manifest, TaskSpec
from potluck.signing import PURPOSE_MANIFEST, open_envelope, seal

MANIFEST_FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True)
class SignedManifest:
    """A manifest whose lead signature has been verified."""

    manifest: Manifest
    payload: bytes  # the serialized Manifest, as signed
    envelope: bytes  # the SignedEnvelope bytes, as shipped
    lead_key: bytes

    @property
    def manifest_id(self) -> bytes:
        return manifest_id(self.payload)

    @property
    def origin(self) -> str:
        return self.manifest.origin


def manifest_id(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


def serialize_manifest(manifest: Manifest) -> bytes:
    """The canonical bytes of a manifest: identical across runs, processes and machines."""
    return manifest.SerializeToString(deterministic=True)


def sign_manifest(manifest: Manifest, lead: AccountKey) -> bytes:
    """Sign a manifest with the lead's account key; return the envelope bytes to write or serve."""
    return seal(serialize_manifest(manifest), purpose=PURPOSE_MANIFEST, origin=manifest.origin,
                signing_key=lead.signing_key)


def verify_manifest(data: bytes, *, lead_key: bytes | None = None) -> SignedManifest:
    """Check a signed manifest (by `lead_key` when given) and return it; raise `VerificationError`."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise VerificationError(f"expected a manifest of at most {MAX_MANIFEST_BYTES} bytes, got {len(data)}")
    opened = open_envelope(data, purpose=PURPOSE_MANIFEST, origin=None, signer=lead_key)
    try:
        manifest = Manifest.FromString(opened.payload)
    except DecodeError:
        raise VerificationError("expected a serialized Manifest inside the envelope, got undecodable bytes") from None
    if serialize_manifest(manifest) != opened.payload:
        raise VerificationError("expected a canonically serialized Manifest, got a non-canonical encoding")
    if manifest.origin != opened.origin:
        raise VerificationError(f"expected manifest origin {opened.origin!r}, got {manifest.origin!r}")
    if manifest.format_version != MANIFEST_FORMAT_VERSION:
        raise VerificationError(
            f"expected manifest format version {MANIFEST_FORMAT_VERSION}, got {manifest.format_version}"
        )
    return SignedManifest(manifest=manifest, payload=opened.payload, envelope=data, lead_key=opened.signer)


def read_manifest_file(path: Path, *, lead_key: bytes | None = None) -> SignedManifest:
    """Read and verify a `.manifest` file; errors name the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: manifest file does not exist") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read manifest ({e.strerror})") from None
    try:
        return verify_manifest(data, lead_key=lead_key)
    except VerificationError as e:
        raise VerificationError(f"{path}: {e}") from None


def parse_lead_key(text: str) -> bytes:
    """A lead's key as given on the command line: the 64-hex-digit account id."""
    return bytes.fromhex(parse_account_id(text, "--lead-key", "must be the lead's account id, 64 hex digits"))


def param_dict(task: TaskSpec) -> dict[str, Any]:
    """A task's parameters as plain Python values."""
    return {key: getattr(value, value.WhichOneof("kind")) for key, value in task.params.items()}


def is_training(shard: DatasetShard) -> bool:
    """Whether a task trains on the shard: not a held-out ("eval") one, the tokenizer, nor the state a
    resumed swarm starts from ("init")."""
    return shard.kind in ("", "train")


def training_shards(manifest: Manifest) -> set[str]:
    """The sha256 of every dataset shard a task trains on (`is_training`)."""
    return {shard.sha256 for shard in manifest.datasets if is_training(shard)}


def initial_state_shard(manifest: Manifest) -> str | None:
    """The sha256 of the checkpoint a resumed swarm's model starts from (`swarm start --resume`), if any."""
    return next((shard.sha256 for shard in manifest.datasets if shard.kind == "init"), None)
