"""Shared fixtures: a private POTLUCK_HOME per test, and a check that no test leaves processes behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from proctree import descendant_pids

import potluck  # noqa: F401  before any test module imports grpc: it turns gRPC's fork handlers off


@pytest.fixture(autouse=True)
def potluck_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("potluck-home")
    monkeypatch.setenv("POTLUCK_HOME", str(home))
    monkeypatch.delenv("POTLUCK_DEBUG", raising=False)
    return home


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes():
    """After the whole suite, this process must have no descendants left (zombies reaped too)."""
    yield
    leftovers = descendant_pids(os.getpid())
    assert not leftovers, f"processes left running after the test session: {leftovers}"
