"""The node's network identity and its binding to the account.

hivemind names a peer by a libp2p PeerID derived from an RSA key. The node keeps that key in its
state dir (so the PeerID survives restarts) and registers a binding statement signed by both
keys: the RSA key proves the PeerID, the account key proves the account. The tracker can then
match DHT records and averaging groups to accounts.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.protobuf.message import DecodeError
from hivemind.proto import crypto_pb2

from potluck.errors import KeyFileError, VerificationError
from potluck.identity import AccountKey, account_id_of
from potluck.keyfile import create_secret_file, read_secret_file
from potluck.proto.report_pb2 import KeyBinding, KeyBindingStatement
from potluck.signing import PURPOSE_BINDING, open_envelope, seal

PEER_SIGNATURE_TAG = b"potluck/binding-peer/v1\n"
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)


@dataclass(frozen=True)
class PeerIdentity:
    """A hivemind (libp2p) RSA identity: the file p2pd loads, and the PeerID it yields."""

    path: Path
    private_key: rsa.RSAPrivateKey

    @property
    def public_key_bytes(self) -> bytes:
        """The libp2p-encoded public key, whose multihash is the PeerID."""
        der = self.private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
        return crypto_pb2.PublicKey(key_type=crypto_pb2.RSA, data=der).SerializeToString()

    @property
    def peer_id(self) -> str:
        return peer_id_of(self.public_key_bytes)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data, _PSS, hashes.SHA256())


def peer_id_of(public_key_bytes: bytes) -> str:
    """base58 of the sha2-256 multihash of a libp2p-encoded public key (libp2p's PeerID for RSA keys)."""
    return base58.b58encode(b"\x12\x20" + hashlib.sha256(public_key_bytes).digest()).decode()


def load_or_create_peer_identity(path: Path) -> PeerIdentity:
    """The node's stable network identity, created (mode 0600) on first use."""
    if not os.path.lexists(path):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        create_secret_file(path, crypto_pb2.PrivateKey(key_type=crypto_pb2.RSA, data=der).SerializeToString())
    raw = read_secret_file(path)
    try:
        key = serialization.load_der_private_key(crypto_pb2.PrivateKey.FromString(raw).data, password=None)
    except (DecodeError, ValueError, TypeError):
        raise KeyFileError(f"{path}: corrupt network identity (not a libp2p RSA private key)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: corrupt network identity (not an RSA key)")
    return PeerIdentity(path, key)


def make_binding(account: AccountKey, peer: PeerIdentity, origin: str) -> bytes:
    """A binding statement signed by the network identity, sealed by the account key."""
    statement = KeyBindingStatement(origin=origin, account_id=account.account_id, peer_id=peer.peer_id,
                                    peer_public_key=peer.public_key_bytes).SerializeToString(deterministic=True)
    binding = KeyBinding(statement=statement, peer_signature=peer.sign(PEER_SIGNATURE_TAG + statement))
    return seal(binding.SerializeToString(deterministic=True), purpose=PURPOSE_BINDING, origin=origin,
                signing_key=account.signing_key)


@dataclass(frozen=True)
class VerifiedBinding:
    account_id: str
    peer_id: str


def verify_binding(data: bytes, origin: str) -> VerifiedBinding:
    """Check both signatures of a binding and that each key is the one it names; raise `VerificationError`."""
    opened = open_envelope(data, purpose=PURPOSE_BINDING, origin=origin)
    try:
        binding = KeyBinding.FromString(opened.payload)
        statement = KeyBindingStatement.FromString(binding.statement)
        public_key = crypto_pb2.PublicKey.FromString(statement.peer_public_key)
    except DecodeError:
        raise VerificationError("expected a serialized KeyBinding, got undecodable bytes") from None
    account_id = account_id_of(opened.signer)
    if statement.origin != origin:
        raise VerificationError(f"binding: expected origin {origin!r}, got {statement.origin!r}")
    if statement.account_id != account_id:
        raise VerificationError(f"binding: expected account {account_id} (the signer), got {statement.account_id}")
    if peer_id_of(statement.peer_public_key) != statement.peer_id:
        raise VerificationError(f"binding: expected PeerID {peer_id_of(statement.peer_public_key)} for the given key, "
                                f"got {statement.peer_id}")
    try:
        rsa_key = serialization.load_der_public_key(public_key.data)
        if public_key.key_type != crypto_pb2.RSA or not isinstance(rsa_key, rsa.RSAPublicKey):
            raise ValueError("not RSA")
        rsa_key.verify(binding.peer_signature, PEER_SIGNATURE_TAG + binding.statement, _PSS, hashes.SHA256())
    except (ValueError, TypeError, InvalidSignature):
        raise VerificationError(f"binding: the network identity's signature for {statement.peer_id} "
                                "does not verify") from None
    return VerifiedBinding(account_id=account_id, peer_id=statement.peer_id)

