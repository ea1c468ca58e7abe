"""The log key an auditor pins: the verifier key text `origin+keyid+base64`, given inline or as a file."""

from __future__ import annotations

from pathlib import Path

from potluck.errors import ConfigError, VerificationError
from potluck.tlog.note import parse_verifier_key

__all__ = ["read_log_key"]


def read_log_key(value: str) -> str:
    """The verifier key text from `--log-key`: the text itself, or the path of a file holding it (`log.pub`).

    Returns the key text, checked (name, key id and key agree). Raises `ConfigError` with one line
    saying what is wrong.
    """
    path = Path(value).expanduser()
    try:
        is_file = path.is_file()
    except OSError:  # e.g. a key text too long to be a file name
        is_file = False
    if is_file:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--log-key {path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        source = f"--log-key {path}"
    else:
        text = value.strip()
        if "+" not in text:
            raise ConfigError(f"--log-key {value!r}: neither a verifier key (origin+keyid+base64) nor a file")
        source = "--log-key"
    if not text or "\n" in text:
        raise ConfigError(f"{source}: expected one line holding a verifier key (origin+keyid+base64)")
    try:
        parse_verifier_key(text)
    except VerificationError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return text
