"""Account keys: the Ed25519 identity that every volunteer, lead and auditor signs with.

The key file is two lines of text, `potluck-account-key-v1` and the hex of the 32-byte
Ed25519 seed, kept readable by its owner only. The account id is the lowercase hex of
the public key.
"""

from __future__ import annotations

import re
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


MAX_OWNER_CHARS = 200
OWNER_RE = re.compile(rf"[^\x00-\x20\x7f][^\x00-\x1f\x7f]{{0,{MAX_OWNER_CHARS - 1}}}")


def parse_credited(text: str, what: str) -> str:
    """Whom a balance is of: an account id (returned lowercase), or a data owner's name as a manifest's
    datasets give it (potluck/data_credit.py); `ConfigError` naming `what` otherwise."""
    if isinstance(text, str) and ACCOUNT_ID_RE.fullmatch(text.lower()):
        return text.lower()
    if not isinstance(text, str) or not OWNER_RE.fullmatch(text):
        raise ConfigError(f"{what}: must be an account id (64 hex digits) or a data owner's name, up to "
                          f"{MAX_OWNER_CHARS} printable characters (got {str(text)[:80]!r})")
    return text


def short_id(account_id: str) -> str:
    """The first 12 characters, for tables."""
    return account_id[:12]


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
