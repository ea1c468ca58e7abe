"""Signed notes: known answers from Go's golang.org/x/mod/sumdb/note, round trips and forgeries.

Known-answer sources:
  * golang/mod sumdb/note/note_test.go — the PeterNeumann and EnochRoot keys and signatures
    (TestNewVerifier, TestSign, TestOpen).
  * sum.golang.org's published verifier key, and a checkpoint it signed (tree size 65664258),
    as pinned in a public project's test (search corpus: "GO_NOTE", "sum.golang.org+033de0ae").
"""

from __future__ import annotations

import base64

import pytest
from nacl.signing import SigningKey

from potluck.errors import VerificationError
from potluck.tlog.note import (
    key_id,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    signer_key_text,
    split_note,
    verifier_key_text,
)

pytestmark = pytest.mark.timeout(60)

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

# Note: the key as the task brief quoted it ("…+s3Ze6iBCF6/RqnVBp") is not valid base64; this is
# the key Go actually ships.
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = base64.b64decode(
    "Z28uc3VtIGRhdGFiYXNlIHRyZWUKNjU2NjQyNTgKV1ZWTlZEMnF4K2ZUcTMxemtqNlVBcXhUNVg2SHZHcGhHTStvOFRobmJzZz0KCuKAlCBz"
    "dW0uZ29sYW5nLm9yZyBBejNncmxpZ0ptZ1g3S0d5R1BLeWJ5a05UaDNWZ3NiTHZVdXZPd3JNNXpMVmx1bG1GcDJ3ZHZieE93NzQvZ2NOeFVS"
    "U2hYRXBiN1JYY3MzK0JZZmxZTit3MGdRPQo="
).decode("utf-8")


def test_sumdb_key_parses_and_key_id_recomputes() -> None:
    name, kid, vk = parse_verifier_key(SUMDB_VKEY)
    assert name == "sum.golang.org"
    assert kid.hex() == "033de0ae"
    assert key_id(name, bytes(vk)).hex() == "033de0ae"
    assert verifier_key_text(name, vk) == SUMDB_VKEY


def test_sumdb_signed_checkpoint_opens() -> None:
    assert open_note(SUMDB_NOTE, SUMDB_VKEY) == (
        "go.sum database tree\n65664258\nWVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg=\n"
    )
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(SUMDB_NOTE.replace("65664258", "65664259"), SUMDB_VKEY)


def test_go_signer_key_reproduces_go_signature_exactly() -> None:
    name, kid, sk = parse_signer_key(PETER_SKEY)
    assert (name, kid.hex()) == ("PeterNeumann", "c74f20a3")
    assert verifier_key_text(name, sk.verify_key) == PETER_VKEY
    assert signer_key_text(name, sk) == PETER_SKEY
    # Ed25519 is deterministic, so our note must be Go's, byte for byte.
    assert sign_note(TEXT, name, sk) == TEXT + "\n" + PETER_SIG


def test_go_note_with_two_signatures_opens_with_either_key() -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, PETER_VKEY) == TEXT
    assert open_note(note, ENOCH_VKEY) == TEXT
    assert open_note(note.encode("utf-8"), ENOCH_VKEY) == TEXT
    text, sigs = split_note(note)
    assert text == TEXT
    assert [s.key_label for s in sigs] == ["PeterNeumann+c74f20a3", "EnochRoot+af0cfe78"]


def test_mangled_verifier_keys_are_refused() -> None:
    # As TestNewVerifier: every proper substring and every single-byte change must fail.
    for i in range(len(PETER_VKEY)):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)) and PETER_VKEY[i:j].strip() != PETER_VKEY:
                with pytest.raises(VerificationError):
                    parse_verifier_key(PETER_VKEY[i:j])
    for i in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(VerificationError):
            parse_verifier_key(mangled)
    # Wrong key length and unknown algorithm, each with a key id adjusted to match.
    with pytest.raises(VerificationError, match="canonical"):
        parse_verifier_key("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(VerificationError, match="algorithm"):
        parse_verifier_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_verifier_key_errors_name_the_problem() -> None:
    short_key = base64.b64encode(b"\x01" + bytes(31)).decode()
    name_and_id = f"x+{key_id('x', bytes(31)).hex()}"
    with pytest.raises(VerificationError, match="expected a 32-byte Ed25519 key, got 31 bytes"):
        parse_verifier_key(f"{name_and_id}+{short_key}")
    with pytest.raises(VerificationError, match="key id is c74f20a4, but name and key give c74f20a3"):
        parse_verifier_key(PETER_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(VerificationError, match="name\\+keyid\\+base64key"):
        parse_verifier_key("PeterNeumann")
    with pytest.raises(VerificationError, match="8 lowercase hex"):
        parse_verifier_key(PETER_VKEY.replace("c74f20a3", "C74F20A3"))


def test_mangled_signer_keys_are_refused_without_echoing_the_secret() -> None:
    with pytest.raises(ValueError) as info:
        parse_signer_key(PETER_SKEY.replace("+AYEK", "+AYEL"))
    assert "AYEL" not in str(info.value)
    for i in range(len("PRIVATE+KEY+"), len(PETER_SKEY) - 1):
        with pytest.raises(ValueError):
            parse_signer_key(PETER_SKEY[:i])


def test_round_trip_with_a_fresh_key() -> None:
    sk = SigningKey.generate()
    vkey = verifier_key_text("example.com/log", sk.verify_key)
    text = "hello\n\nwith a blank line inside\n"
    note = sign_note(text, "example.com/log", sk)
    assert open_note(note, vkey) == text


def test_wrong_key_is_refused_naming_both_keys() -> None:
    sk, other = SigningKey.generate(), SigningKey.generate()
    note = sign_note("hello\n", "log", sk)
    other_vkey = verifier_key_text("log", other.verify_key)
    with pytest.raises(VerificationError) as info:
        open_note(note, other_vkey)
    message = str(info.value)
    assert f"no signature by key log+{key_id('log', bytes(other.verify_key)).hex()}" in message
    assert f"found signatures by: log+{key_id('log', bytes(sk.verify_key)).hex()}" in message


def test_signatures_by_unknown_keys_are_ignored() -> None:
    sk = SigningKey.generate()
    note = sign_note(TEXT, "log", sk) + ENOCH_SIG  # Enoch signed TEXT too, but nobody asked.
    assert open_note(note, verifier_key_text("log", sk.verify_key)) == TEXT


def test_flipped_byte_in_text_or_signature_fails() -> None:
    sk = SigningKey.generate()
    vkey = verifier_key_text("log", sk.verify_key)
    note = sign_note("origin\n42\n", "log", sk)
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(note.replace("42", "43"), vkey)
    sig_start = note.index("— log ") + len("— log ") + 8  # past the key id
    for pos in range(sig_start, len(note) - 3):
        ch = note[pos]
        swapped = "A" if ch != "A" else "B"
        with pytest.raises(VerificationError):
            open_note(note[:pos] + swapped + note[pos + 1 :], vkey)


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        "\ud800" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("—", "-"),
        TEXT + "\n" + PETER_SIG * 101,
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    # Go's TestOpen badMsgs, plus a hyphen for the em dash and too many signatures.
    with pytest.raises(VerificationError, match="malformed"):
        open_note(note, PETER_VKEY)


def test_malformed_bytes_note_is_refused() -> None:
    with pytest.raises(VerificationError, match="UTF-8"):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode("utf-8"), PETER_VKEY)


def test_sign_note_refuses_bad_text_and_names() -> None:
    sk = SigningKey.generate()
    with pytest.raises(ValueError, match="newline"):
        sign_note("abc", "log", sk)
    with pytest.raises(ValueError, match="control"):
        sign_note("a\rb\n", "log", sk)
    for bad_name in ["", "a+b", "a b", "a\u00a0b"]:
        with pytest.raises(ValueError, match="key name"):
            sign_note("abc\n", bad_name, sk)
