"""Checkpoints: the exact body format, signing, and each way a checkpoint can fail to verify."""

from __future__ import annotations

import base64
import hashlib

import pytest
from nacl.signing import SigningKey

from potluck.errors import VerificationError
from potluck.tlog.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from potluck.tlog.note import sign_note, verifier_key_text

pytestmark = pytest.mark.timeout(60)

ORIGIN = "potluck.example/swarm-1"
ROOT = hashlib.sha256(b"root").digest()

# A checkpoint signed by sum.golang.org (see test_ledger_note.py for the source). Its origin
# differs from its key name, which Go's sumdb predates.
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = (
    "go.sum database tree\n65664258\nWVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg=\n\n"
    "— sum.golang.org Az3grligJmgX7KGyGPKybykNTh3VgsbLvUuvOwrM5zLVlulmFp2wdvbxOw74/gcNxURShXEpb7RXcs3+BYflYN+w0gQ=\n"
)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def vkey(key: SigningKey) -> str:
    return verifier_key_text(ORIGIN, key.verify_key)


def test_body_format() -> None:
    cp = Checkpoint(origin=ORIGIN, size=20852163, root_hash=ROOT)
    assert cp.to_body() == f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(cp.to_body()) == cp
    empty = Checkpoint(origin=ORIGIN, size=0, root_hash=hashlib.sha256(b"").digest())
    assert empty.to_body().split("\n")[1] == "0"


def test_sign_and_verify_round_trip(key: SigningKey, vkey: str) -> None:
    cp = Checkpoint(origin=ORIGIN, size=7, root_hash=ROOT)
    note = sign_checkpoint(cp, key)
    assert note.startswith(cp.to_body() + "\n— " + ORIGIN + " ")
    assert verify_checkpoint(note, vkey) == cp
    assert verify_checkpoint(note, vkey, expected_origin=ORIGIN) == cp


def test_sumdb_checkpoint_verifies_with_explicit_origin() -> None:
    cp = verify_checkpoint(SUMDB_NOTE, SUMDB_VKEY, expected_origin="go.sum database tree")
    assert cp.size == 65664258
    assert cp.root_hash == base64.b64decode("WVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg=")
    # By default the origin must be the key's name.
    with pytest.raises(VerificationError, match="expected origin 'sum.golang.org', got 'go.sum database tree'"):
        verify_checkpoint(SUMDB_NOTE, SUMDB_VKEY)


def test_extension_lines_are_tolerated_and_kept(key: SigningKey, vkey: str) -> None:
    body = f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}\nextension one\nextension two\n"
    cp = verify_checkpoint(sign_note(body, ORIGIN, key), vkey)
    assert (cp.size, cp.root_hash) == (3, ROOT)
    assert cp.extensions == ("extension one", "extension two")
    assert cp.to_body() == body


def test_wrong_key_fails(key: SigningKey) -> None:
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=1, root_hash=ROOT), key)
    other = verifier_key_text(ORIGIN, SigningKey.generate().verify_key)
    with pytest.raises(VerificationError, match="no signature by key"):
        verify_checkpoint(note, other)


def test_other_origin_fails(key: SigningKey, vkey: str) -> None:
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=1, root_hash=ROOT), key)
    with pytest.raises(VerificationError, match=f"expected origin 'other.example/log', got '{ORIGIN}'"):
        verify_checkpoint(note, vkey, expected_origin="other.example/log")
    # A checkpoint for another origin, signed by the right key under the right name.
    body = Checkpoint(origin="other.example/log", size=1, root_hash=ROOT).to_body()
    with pytest.raises(VerificationError, match=f"expected origin '{ORIGIN}', got 'other.example/log'"):
        verify_checkpoint(sign_note(body, ORIGIN, key), vkey)


def test_flipped_bytes_fail(key: SigningKey, vkey: str) -> None:
    note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=1234, root_hash=ROOT), key)
    body_end = note.index("\n\n")
    for pos in range(body_end):
        if note[pos] == "\n":
            continue
        changed = note[:pos] + chr(ord(note[pos]) ^ 1) + note[pos + 1 :]
        with pytest.raises(VerificationError):
            verify_checkpoint(changed, vkey)
    sig_pos = len(note) - 10
    changed = note[:sig_pos] + ("A" if note[sig_pos] != "A" else "B") + note[sig_pos + 1 :]
    with pytest.raises(VerificationError, match="does not verify"):
        verify_checkpoint(changed, vkey)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (f"{ORIGIN}\n012\n{base64.b64encode(ROOT).decode()}\n", "size \\(line 2\\) '012'"),
        (f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n", "size \\(line 2\\) '-1'"),
        (f"{ORIGIN}\nten\n{base64.b64encode(ROOT).decode()}\n", "size \\(line 2\\) 'ten'"),
        (f"{ORIGIN}\n10\n{ROOT.hex()}\n", "root hash \\(line 3\\)"),
        (f"{ORIGIN}\n10\n{base64.b64encode(ROOT[:31]).decode()}\n", "root hash \\(line 3\\) is 31 bytes"),
        (f"{ORIGIN}\n10\n", "expected at least 3 lines, got 2"),
        (f"{ORIGIN}\n10\n{base64.b64encode(ROOT).decode()}\n\nx\n", "extension line 4 is empty"),
    ],
)
def test_malformed_signed_bodies_fail(key: SigningKey, vkey: str, body: str, complaint: str) -> None:
    with pytest.raises(VerificationError, match=f"malformed checkpoint: {complaint}"):
        verify_checkpoint(sign_note(body, ORIGIN, key), vkey)


def test_checkpoint_values_are_checked_on_construction() -> None:
    with pytest.raises(ValueError):
        Checkpoint(origin="", size=1, root_hash=ROOT)
    with pytest.raises(ValueError):
        Checkpoint(origin=ORIGIN, size=-1, root_hash=ROOT)
    with pytest.raises(ValueError):
        Checkpoint(origin=ORIGIN, size=1, root_hash=ROOT[:31])
