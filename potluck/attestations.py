"""Attestations: what a volunteer gathers into each averaging round to tell its groupmates who it is.

An attestation is an `Attestation` (origin, epoch, peer, account) sealed by the account's key. A
groupmate carries the attestations it gathered in its report; the tracker then knows who averaged
with whom. Who may be blamed for a bad one (threat model, docs/threat-model.md): only whoever signed
it. The reporter that carries it signed nothing about it, and a peer named in it did not sign it
either, so a bad attestation costs the reporter nothing, and the named peer only closer scrutiny.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from potluck.errors import VerificationError
from potluck.identity import AccountKey, account_id_of
from potluck.proto.report_pb2 import Attestation
from potluck.proto.wire import MAX_ATTESTATION_BYTES
from potluck.signing import PURPOSE_ATTESTATION, open_envelope, seal


@dataclass(frozen=True)
class AttesterClaim:
    """One attestation whose signature holds: who signed it, and the peer and account it names.

    An honest attestation names its signer's own account and a peer bound to it; one that does not
    is a false statement its signer made.
    """

    signer: str  # account id of the key that signed it
    peer_id: str
    account_id: str
    epoch: int
    sha256: bytes  # of the attestation's bytes: the same one carried twice is one statement

    @property
    def names_its_signer(self) -> bool:
        return self.account_id == self.signer


def sign_attestation(account: AccountKey, origin: str, epoch: int, peer_id: str) -> bytes:
    """What this node gathers into its averaging round at `epoch`: proof to groupmates of who it is."""
    message = Attestation(origin=origin, epoch=epoch, peer_id=peer_id, account_id=account.account_id)
    return seal(message.SerializeToString(deterministic=True), purpose=PURPOSE_ATTESTATION, origin=origin,
                signing_key=account.signing_key)


def open_attestation(data: bytes, origin: str) -> AttesterClaim:
    """The claim a serialized attestation makes, if it is small, well formed, signed and for this swarm;
    raise `VerificationError` saying what is wrong. (Whether it is true is the caller's to judge.)"""
    if len(data) > MAX_ATTESTATION_BYTES:
        raise VerificationError(f"attestation of {len(data)} bytes exceeds {MAX_ATTESTATION_BYTES}")
    opened = open_envelope(data, purpose=PURPOSE_ATTESTATION, origin=origin)
    try:
        attestation = Attestation.FromString(opened.payload)
    except DecodeError:
        raise VerificationError("expected an Attestation, got undecodable bytes") from None
    signer = account_id_of(opened.signer)
    if attestation.origin != origin:
        raise VerificationError(f"attestation for another swarm: expected origin {origin!r}, "
                                f"got {attestation.origin!r}")
    return AttesterClaim(signer=signer, peer_id=attestation.peer_id, account_id=attestation.account_id,
                         epoch=attestation.epoch, sha256=hashlib.sha256(data).digest())
