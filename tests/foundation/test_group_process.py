"""GroupProcess: a child killed from outside does not leave the next child stuck."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(90)
def test_a_child_killed_holding_hivemind_locks_does_not_block_the_next_one():
    # In a process of its own: the locks this test breaks are shared with whoever forked the holder.
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("lock_holder.py"))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr[-2000:]
