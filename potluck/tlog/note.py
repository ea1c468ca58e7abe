"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then one or more signature lines
`— <key name> base64(key id ‖ signature)`. A key is named by its name and a 4-byte key id,
SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], and written as text the way golang.org/x/mod/sumdb/note
does: `name+hex8(key id)+base64(0x01 ‖ public key)` for verifiers and
`PRIVATE+KEY+name+hex8(key id)+base64(0x01 ‖ seed)` for signers, so keys interoperate with Go tools.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from potluck.errors import VerificationError

from ._codec import b64decode_strict, b64encode

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "NoteSignature",
    "key_id",
    "open_note",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
    "signer_key_text",
    "split_note",
    "verifier_key_text",
]

#: Signature type byte for Ed25519 in the signed-note spec.
ALG_ED25519 = 0x01
#: Go's sumdb/note limit; the spec asks verifiers to accept at least 16.
MAX_SIGNATURES = 100

_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_HEX8 = re.compile(r"[0-9a-f]{8}")
# Control characters other than newline are forbidden anywhere in a note.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note: who signed (name and key id) and the raw signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def key_label(self) -> str:
        """`name+hex8(key id)`, how keys are named in messages."""
        return f"{self.name}+{self.key_id.hex()}"


def _check_name(name: str) -> None:
    if not name:
        raise ValueError("key name is empty")
    if "+" in name or any(ch.isspace() for ch in name) or _CONTROL.search(name):
        raise ValueError(f"key name {name!r} contains a space, '+' or control character")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte Ed25519 key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def verifier_key_text(name: str, verify_key: VerifyKey) -> str:
    """The verifier key as text: `name+hex8(key id)+base64(0x01 ‖ public key)`."""
    _check_name(name)
    pub = bytes(verify_key)
    return f"{name}+{key_id(name, pub).hex()}+{b64encode(bytes([ALG_ED25519]) + pub)}"


def signer_key_text(name: str, signing_key: SigningKey) -> str:
    """The signer (private) key as text, in Go sumdb/note's `PRIVATE+KEY+…` form."""
    _check_name(name)
    pub = bytes(signing_key.verify_key)
    seed = bytes(signing_key)
    return f"{_PRIVATE_PREFIX}{name}+{key_id(name, pub).hex()}+{b64encode(bytes([ALG_ED25519]) + seed)}"


def _parse_key_text(text: str, what: str) -> tuple[str, bytes, bytes]:
    """Split `name+hex8+base64(0x01 ‖ key)` into name, key id and 32 key bytes.

    Raises ValueError saying what is wrong; messages start with `what`, which callers holding a
    secret keep free of the key text itself.
    """
    name, sep1, rest = text.partition("+")
    id_hex, sep2, key_b64 = rest.partition("+")
    if not (sep1 and sep2):
        raise ValueError(f"{what} is not of the form name+keyid+base64key")
    try:
        _check_name(name)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if not _HEX8.fullmatch(id_hex):
        raise ValueError(f"{what}: key id {id_hex!r} is not 8 lowercase hex digits")
    try:
        raw = b64decode_strict(key_b64)
    except ValueError as exc:
        raise ValueError(f"{what}: key is {exc}") from None
    if not raw or raw[0] != ALG_ED25519:
        alg = f"0x{raw[0]:02x}" if raw else "none"
        raise ValueError(f"{what}: expected algorithm 0x01 (Ed25519), got {alg}")
    if len(raw) != 33:
        raise ValueError(f"{what}: expected a 32-byte Ed25519 key, got {len(raw) - 1} bytes")
    return name, bytes.fromhex(id_hex), raw[1:]


def parse_verifier_key(text: str) -> tuple[str, bytes, VerifyKey]:
    """Parse a verifier key text into (name, 4-byte key id, VerifyKey).

    Raises `VerificationError` naming what is wrong, including a key id that does not match
    the name and key (a mangled or substituted key).
    """
    try:
        name, kid, pub = _parse_key_text(text.strip(), f"verifier key {text.strip()!r}")
    except ValueError as exc:
        raise VerificationError(str(exc)) from None
    expected = key_id(name, pub)
    if kid != expected:
        raise VerificationError(
            f"verifier key {text.strip()!r}: key id is {kid.hex()}, but name and key give {expected.hex()}"
        )
    return name, kid, VerifyKey(pub)


def parse_signer_key(text: str) -> tuple[str, bytes, SigningKey]:
    """Parse a `PRIVATE+KEY+name+hex8+base64(0x01 ‖ seed)` text into (name, key id, SigningKey).

    Raises ValueError (without echoing the secret) when malformed or when the key id does not
    match the key.
    """
    text = text.strip()
    if not text.startswith(_PRIVATE_PREFIX):
        raise ValueError("signer key does not start with PRIVATE+KEY+")
    # The message must not echo the text: it holds the secret seed.
    name, kid, seed = _parse_key_text(text[len(_PRIVATE_PREFIX) :], "signer key")
    signing_key = SigningKey(seed)
    expected = key_id(name, bytes(signing_key.verify_key))
    if kid != expected:
        raise ValueError(f"signer key id is {kid.hex()}, but the key gives {expected.hex()}")
    return name, kid, signing_key


def _check_text(note: str, what: str) -> None:
    if _CONTROL.search(note):
        raise VerificationError(f"malformed {what}: contains a control character other than newline")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise VerificationError(f"malformed {what}: not valid UTF-8") from None


def split_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text (with final newline) and its signature lines, unverified.

    Raises `VerificationError` if the note is not well formed.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError("malformed note: not valid UTF-8") from None
    _check_text(note, "note")
    # The text ends at the last blank line; the text itself may contain blank lines.
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError("malformed note: no blank line between text and signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block:
        raise VerificationError("malformed note: no signature lines")
    if not sig_block.endswith("\n"):
        raise VerificationError("malformed note: signature block does not end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"malformed note: {len(lines)} signatures, at most {MAX_SIGNATURES} allowed")
    sigs: list[NoteSignature] = []
    first_line = text.count("\n") + 2
    for i, line in enumerate(lines):
        where = f"malformed note: signature line {first_line + i}"
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError(f"{where} does not start with an em dash and a space: {line[:40]!r}")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep:
            raise VerificationError(f"{where} has no space between key name and signature")
        try:
            _check_name(name)
            raw = b64decode_strict(b64)
        except ValueError as exc:
            raise VerificationError(f"{where}: {exc}") from None
        if len(raw) < 5:
            raise VerificationError(f"{where}: signature is {len(raw)} bytes, too short for a key id and signature")
        sigs.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
    return text, sigs


def sign_note(text: str, name: str, signing_key: SigningKey) -> str:
    """Sign `text` (which must end in a newline) with an Ed25519 key named `name`; returns the note."""
    _check_name(name)
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    try:
        _check_text(text, "note text")
    except VerificationError as exc:
        raise ValueError(str(exc)) from None
    kid = key_id(name, bytes(signing_key.verify_key))
    sig = signing_key.sign(text.encode("utf-8")).signature
    return f"{text}\n{_SIG_PREFIX}{name} {b64encode(kid + sig)}\n"


def open_note(note: str | bytes, verifier_key_text: str) -> str:
    """Verify that `note` carries a valid signature by the given verifier key; returns its text.

    Signatures by other keys are ignored, as the spec requires. Raises `VerificationError` when
    the note is malformed, has no signature by this key, or a signature by this key is invalid.
    """
    name, kid, verify_key = parse_verifier_key(verifier_key_text)
    text, sigs = split_note(note)
    label = f"{name}+{kid.hex()}"
    matching = [s for s in sigs if s.name == name and s.key_id == kid]
    if not matching:
        found = ", ".join(s.key_label for s in sigs)
        raise VerificationError(f"note has no signature by key {label}; found signatures by: {found}")
    message = text.encode("utf-8")
    for sig in matching:
        try:
            verify_key.verify(message, sig.signature)
        except (BadSignatureError, ValueError):
            # A forged or altered note: the text or the signature bytes changed since signing.
            raise VerificationError(
                f"note signature by key {label} does not verify: the note text or signature was altered"
            ) from None
    return text
