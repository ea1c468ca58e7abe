"""The log's own Ed25519 key, kept in `<state_dir>/log.key` and published as `<state_dir>/log.pub`.

`log.key` holds the key in Go sumdb/note's signer text form, `PRIVATE+KEY+<origin>+<keyid>+…`,
so the file says which origin it signs for and carries a key id that catches corruption. It is
written and read with the same 0600 rules as account keys (`potluck.keyfile`). `log.pub` is the
verifier key text auditors pin. Replacing the key would make every pinned copy of `log.pub`
useless, so an existing key file is never overwritten, even a damaged one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nacl.signing import SigningKey

from potluck.atomic_file import write_file_atomically
from potluck.errors import KeyFileError
from potluck.keyfile import create_secret_file, read_secret_file
from potluck.tlog import parse_signer_key, signer_key_text, verifier_key_text

__all__ = ["LOG_KEY_FILE", "LOG_PUB_FILE", "load_or_create_log_key"]

logger = logging.getLogger(__name__)

LOG_KEY_FILE = "log.key"
LOG_PUB_FILE = "log.pub"


def load_or_create_log_key(state_dir: Path, origin: str) -> SigningKey:
    """Load the log key for `origin` from `state_dir`, creating it (and the directory) if absent.

    Also (re)writes `log.pub` with the verifier key text. Raises `KeyFileError` with a one-line
    reason naming the file if it is readable by group or others, corrupt, truncated, of the
    wrong length, or the key of another origin, or if the files cannot be written.
    """
    state_dir = Path(state_dir)
    path = state_dir / LOG_KEY_FILE
    if not os.path.lexists(path):
        key = SigningKey.generate()
        try:
            create_secret_file(path, (signer_key_text(origin, key) + "\n").encode("ascii"))
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot create log key file ({exc.strerror or exc})") from None
        logger.info("created a new log key for origin %r in %s", origin, path)
    key = _parse(path, read_secret_file(path), origin)
    _write_pub(state_dir / LOG_PUB_FILE, verifier_key_text(origin, key.verify_key) + "\n")
    return key


def _parse(path: Path, data: bytes, origin: str) -> SigningKey:
    try:
        name, _, key = parse_signer_key(data.decode("ascii"))
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: log key file is corrupt: not ASCII text") from None
    except ValueError as exc:
        # parse_signer_key never puts the secret in its message.
        raise KeyFileError(f"{path}: log key file is corrupt or truncated: {exc}") from None
    if name != origin:
        raise KeyFileError(
            f"{path}: this is the log key of origin {name!r}, not {origin!r}; "
            "use the matching origin or another state directory"
        )
    return key


def _write_pub(path: Path, text: str) -> None:
    """Atomically write the public verifier key file (mode 0644) unless it already says `text`."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
        logger.warning("rewriting %s: it did not match the log key", path)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError):
        logger.warning("rewriting unreadable %s", path)
    try:
        write_file_atomically(path, text.encode("utf-8"), mode=0o644)  # the verifier key is public
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot write log verifier key file ({exc.strerror or exc})") from None
