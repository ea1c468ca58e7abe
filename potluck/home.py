"""Where potluck keeps its files on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def potluck_home() -> Path:
    """`$POTLUCK_HOME`, or `~/.potluck` when it is unset."""
    configured = os.environ.get("POTLUCK_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".potluck"


def default_account_key_path() -> Path:
    return potluck_home() / "account.key"
