"""Signed envelopes: sign bytes, ship bytes.

A signature covers `purpose || 0x0A || origin || 0x0A || payload`, where payload is the
exact serialized message that travels and is stored. The verifier rebuilds that input
from the purpose and origin it expects, so a signature made for one purpose (a report)
or one swarm never verifies as another.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from potluck.errors import VerificationError
from potluck.proto.envelope_pb2 import SignedEnvelope

PURPOSE_MANIFEST = "potluck/manifest/v1"
PURPOSE_REPORT = "potluck/report/v1"
PURPOSE_BINDING = "potluck/binding/v1"
PURPOSE_ATTESTATION = "potluck/attestation/v1"


def signing_input(purpose: str, origin: str, payload: bytes) -> bytes:
    """The exact bytes an Ed25519 signature covers."""
    for name, value in (("purpose", purpose), ("origin", origin)):
        if not value or "\n" in value:
            raise ValueError(f"{name} must be a non-empty single line (got {value!r})")
    return purpose.encode() + b"\n" + origin.encode() + b"\n" + payload


def seal(payload: bytes, *, purpose: str, origin: str, signing_key: SigningKey) -> bytes:
    """Sign `payload` for `purpose` in swarm `origin`; return the serialized envelope."""
    signature = signing_key.sign(signing_input(purpose, origin, payload)).signature
    envelope = SignedEnvelope(
        purpose=purpose,
        origin=origin,
        payload=payload,
        signer=bytes(signing_key.verify_key),
        signature=signature,
    )
    return envelope.SerializeToString(deterministic=True)


@dataclass(frozen=True)
class OpenedEnvelope:
    """A verified envelope: who signed which bytes, for which swarm."""

    payload: bytes
    signer: bytes
    origin: str


def parse_envelope(data: bytes) -> SignedEnvelope:
    try:
        envelope = SignedEnvelope.FromString(data)
    except DecodeError:
        raise VerificationError("expected a serialized SignedEnvelope, got undecodable bytes") from None
    if envelope.SerializeToString(deterministic=True) != data:
        # Two encodings of one envelope would let one signed report be logged twice.
        raise VerificationError("expected a canonically encoded SignedEnvelope, got a non-canonical encoding")
    return envelope


def open_envelope(data: bytes, *, purpose: str, origin: str | None, signer: bytes | None = None) -> OpenedEnvelope:
    """Verify a serialized envelope and return its payload.

    `origin=None` accepts the envelope's own origin (only for a manifest, which is what
    establishes the origin); the caller must then check it against the payload.
    Raises `VerificationError` saying what was expected and what was found.
    """
    return verify_envelope(parse_envelope(data), purpose=purpose, origin=origin, signer=signer)


def verify_envelope(envelope: SignedEnvelope, *, purpose: str, origin: str | None,
                    signer: bytes | None = None) -> OpenedEnvelope:
    """`open_envelope` for an envelope already parsed (with `parse_envelope`, which checks its encoding)."""
    if envelope.purpose != purpose:
        raise VerificationError(f"expected purpose {purpose!r}, got {envelope.purpose!r}")
    expected_origin = envelope.origin if origin is None else origin
    if envelope.origin != expected_origin:
        raise VerificationError(f"expected origin {expected_origin!r}, got {envelope.origin!r}")
    if len(envelope.signer) != 32:
        raise VerificationError(f"expected a 32-byte Ed25519 signer key, got {len(envelope.signer)} bytes")
    if signer is not None and envelope.signer != signer:
        raise VerificationError(f"expected signer {signer.hex()}, got {envelope.signer.hex()}")
    try:
        message = signing_input(purpose, expected_origin, envelope.payload)
        VerifyKey(envelope.signer).verify(message, envelope.signature)
    except (BadSignatureError, ValueError):
        raise VerificationError(
            f"signature by {envelope.signer.hex()} does not verify for purpose {purpose!r} "
            f"in origin {expected_origin!r}"
        ) from None
    return OpenedEnvelope(payload=envelope.payload, signer=envelope.signer, origin=expected_origin)
