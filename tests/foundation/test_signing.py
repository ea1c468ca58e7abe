"""Sign bytes, ship bytes: envelopes verify only for their own purpose, swarm and signer."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from potluck.errors import VerificationError
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.signing import (
    PURPOSE_MANIFEST,
    PURPOSE_REPORT,
    open_envelope,
    seal,
    signing_input,
)

pytestmark = pytest.mark.timeout(60)

ORIGIN = "potluck.swarm/test/0001"
KEY = SigningKey(bytes(range(32)))


def test_round_trip_returns_the_exact_payload():
    data = seal(b"\x00payload\xff", purpose=PURPOSE_REPORT, origin=ORIGIN, signing_key=KEY)
    opened = open_envelope(data, purpose=PURPOSE_REPORT, origin=ORIGIN, signer=bytes(KEY.verify_key))
    assert opened.payload == b"\x00payload\xff"
    assert opened.signer == bytes(KEY.verify_key) and opened.origin == ORIGIN


def test_signature_covers_tag_then_origin_then_payload():
    assert signing_input(PURPOSE_REPORT, ORIGIN, b"xyz") == b"potluck/report/v1\npotluck.swarm/test/0001\nxyz"
    with pytest.raises(ValueError):
        signing_input(PURPOSE_REPORT, "two\nlines", b"")


def test_cross_purpose_replay_fails():
    data = seal(b"payload", purpose=PURPOSE_REPORT, origin=ORIGIN, signing_key=KEY)
    with pytest.raises(VerificationError, match="expected purpose 'potluck/manifest/v1', got 'potluck/report/v1'"):
        open_envelope(data, purpose=PURPOSE_MANIFEST, origin=ORIGIN)
    # Relabelling the envelope does not help: the signature was made for the other purpose.
    relabelled = SignedEnvelope.FromString(data)
    relabelled.purpose = PURPOSE_MANIFEST
    with pytest.raises(VerificationError, match="does not verify"):
        open_envelope(relabelled.SerializeToString(deterministic=True), purpose=PURPOSE_MANIFEST, origin=ORIGIN)


def test_cross_swarm_replay_fails():
    data = seal(b"payload", purpose=PURPOSE_REPORT, origin=ORIGIN, signing_key=KEY)
    with pytest.raises(VerificationError, match="expected origin 'other-swarm'"):
        open_envelope(data, purpose=PURPOSE_REPORT, origin="other-swarm")
    moved = SignedEnvelope.FromString(data)
    moved.origin = "other-swarm"
    with pytest.raises(VerificationError, match="does not verify"):
        open_envelope(moved.SerializeToString(deterministic=True), purpose=PURPOSE_REPORT, origin="other-swarm")


def test_another_signer_is_rejected():
    other = SigningKey.generate()
    data = seal(b"payload", purpose=PURPOSE_REPORT, origin=ORIGIN, signing_key=other)
    with pytest.raises(VerificationError, match=f"expected signer {bytes(KEY.verify_key).hex()}"):
        open_envelope(data, purpose=PURPOSE_REPORT, origin=ORIGIN, signer=bytes(KEY.verify_key))
    # Swapping in the expected signer's public key breaks the signature instead.
    swapped = SignedEnvelope.FromString(data)
    swapped.signer = bytes(KEY.verify_key)
    with pytest.raises(VerificationError, match="does not verify"):
        open_envelope(swapped.SerializeToString(deterministic=True), purpose=PURPOSE_REPORT, origin=ORIGIN,
                      signer=bytes(KEY.verify_key))


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200), data=st.data())
def test_any_flipped_bit_fails(payload, data):
    sealed = seal(payload, purpose=PURPOSE_REPORT, origin=ORIGIN, signing_key=KEY)
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    tampered = bytearray(sealed)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(VerificationError):
        open_envelope(bytes(tampered), purpose=PURPOSE_REPORT, origin=ORIGIN, signer=bytes(KEY.verify_key))


def test_garbage_and_non_canonical_encodings_are_rejected():
    with pytest.raises(VerificationError, match="undecodable"):
        open_envelope(b"\xff\xff\xff", purpose=PURPOSE_REPORT, origin=ORIGIN)
    sealed = seal(b"p", purpose=PURPOSE_REPORT, origin=ORIGIN, signing_key=KEY)
    # The same fields again, appended: protobuf merges them, but the bytes differ.
    with pytest.raises(VerificationError, match="non-canonical"):
        open_envelope(sealed + SignedEnvelope(payload=b"p").SerializeToString(), purpose=PURPOSE_REPORT,
                      origin=ORIGIN)
