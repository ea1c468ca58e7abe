"""A real tracker on 127.0.0.1 for each test."""

import pytest
from trackerkit import RunningTracker


@pytest.fixture
def tracker(tmp_path):
    running = RunningTracker(tmp_path)
    yield running
    running.stop()
