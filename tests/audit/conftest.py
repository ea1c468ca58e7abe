"""Fixtures for the auditor tests; the lying tracker itself is in auditkit.py (importable from the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/audit is not on the path the suite sets up (tests/ is); the helpers live next to the tests using them.
sys.path.insert(0, str(Path(__file__).parent))

from auditkit import Tracker, build_log  # noqa: E402


@pytest.fixture
def tracker(tmp_path):
    t = Tracker(tmp_path)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(scope="session")
def log40() -> list[bytes]:
    """40 entries of an honest log, shared by the tests (they never change it)."""
    return build_log(40)
