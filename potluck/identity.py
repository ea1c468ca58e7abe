"""Account keys: the Ed25519 identity that every volunteer, lead and auditor signs with.

The key file is two lines of text, `potluck-account-key-v1` and the hex of the 32-byte
Ed25519 seed, kept readable by its owner only. The account id is the lowercase hex of
the public key.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from potluck.errors import ConfigError, KeyFileError
from potluck.keyfile import read_secret_file, write_secret_file

KEY_FILE_HEADER = "potluck-account-key-v1"
ACCOUNT_ID_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AccountKey:
    """An account's signing key, and the file it came from."""

    signing_key: SigningKey
    path: Path | None = None

    @property
    def verify_key(self) -> VerifyKey:
        return self.signing_key.verify_key

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def account_id(self) -> str:
        return account_id_of(self.public_key)

    @classmethod
    def generate(cls) -> AccountKey:
        return cls(SigningKey.generate())


def account_id_of(public_key: bytes) -> str:
    """The account id of an Ed25519 public key: its lowercase hex."""
    return public_key.hex()


def parse_account_id(text: str, what: str, how: str = "must be an account id, 64 hex digits") -> str:
    """The account id `text` names (hex of either case, returned lowercase), or `ConfigError` naming `what`."""
    account_id = text.lower() if isinstance(text, str) else ""
    if not ACCOUNT_ID_RE.fullmatch(account_id):
        raise ConfigError(f"{what}: {how} (got {str(text)[:80]!r})")
    return account_id


MAX_OWNER_BYTES = 120  # of UTF-8: every grant names every owner (potluck/data_credit.py)
# Not in a name: control and format characters (bidi overrides, zero-width), line and paragraph separators.
_NOT_IN_NAMES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def parse_credited(text: str, what: str) -> str:
    """Whom a balance is of: an account id (returned lowercase), or a data owner's name as a manifest's
    datasets give it (potluck/data_credit.py): NFC, printable, no space at either end, at most
    MAX_OWNER_BYTES of UTF-8; `ConfigError` naming `what` otherwise."""
    if isinstance(text, str) and ACCOUNT_ID_RE.fullmatch(text.lower()):
        return text.lower()
    if (not isinstance(text, str) or not 0 < len(text.encode("utf-8", "replace")) <= MAX_OWNER_BYTES
            or text != text.strip()
            or unicodedata.normalize("NFC", text) != text
            or any(unicodedata.category(c) in _NOT_IN_NAMES for c in text)):
        raise ConfigError(f"{what}: must be an account id (64 hex digits) or a data owner's name: up to "
                          f"{MAX_OWNER_BYTES} bytes of printable UTF-8 in NFC, no space at either end "
                          f"(got {str(text)[:80]!r})")
    return text


def short_id(account_id: str) -> str:
    """The first 12 characters of an account id, for tables; a data owner's name, up to 24."""
    if ACCOUNT_ID_RE.fullmatch(account_id):
        return account_id[:12]
    return account_id if len(account_id) <= 24 else account_id[:23] + "…"


def create_account_key(path: Path, *, force: bool = False) -> AccountKey:
    """Generate a new account key and store it at `path` with mode 0600."""
    key = SigningKey.generate()
    text = f"{KEY_FILE_HEADER}\n{bytes(key).hex()}\n"
    write_secret_file(path, text.encode(), force=force)
    return AccountKey(key, path)


def load_account_key(path: Path) -> AccountKey:
    """Load an account key, or raise `KeyFileError` naming the file and what is wrong with it."""
    raw = read_secret_file(path, hint="; create one with `potluck identity create`")
    try:
        lines = raw.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: corrupt key file (not text)") from None
    if not lines or lines[0] != KEY_FILE_HEADER:
        got = lines[0][:40] if lines else "an empty file"
        raise KeyFileError(f"{path}: corrupt key file (expected first line {KEY_FILE_HEADER!r}, got {got!r})")
    if len(lines) != 2:
        raise KeyFileError(f"{path}: corrupt key file (expected 2 lines, got {len(lines)})")
    try:
        seed = bytes.fromhex(lines[1])
    except ValueError:
        raise KeyFileError(f"{path}: corrupt key file (the key line is not hex)") from None
    if len(seed) != 32:
        raise KeyFileError(f"{path}: corrupt key file (expected a 32-byte key, got {len(seed)} bytes)")
    return AccountKey(SigningKey(seed), path)
