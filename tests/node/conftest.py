"""Fixtures of the node tests that run the console script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clikit import potluck


@pytest.fixture
def home(tmp_path) -> Path:
    """A POTLUCK_HOME holding an account key made with `potluck identity create`."""
    home = tmp_path / "home"
    created = potluck(home, "identity", "create", "--json")
    assert created.returncode == 0, created.stderr
    assert Path(json.loads(created.stdout)["path"]) == home / "account.key"
    return home
