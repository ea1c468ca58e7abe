"""SQLite files whose commits survive a crash: WAL with synchronous=FULL, one connection shared by threads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from potluck.errors import ConfigError


def open_durable(path: Path, schema: str, what: str) -> sqlite3.Connection:
    """Open (creating it and its folder if needed) a SQLite file in which a commit returns only after
    the write-ahead log is fsynced; `what` names the file in the one-line error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(schema)
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"{path}: cannot open {what} ({e})") from None
    return db
