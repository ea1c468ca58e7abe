"""A process forked while gRPC calls are in flight survives (potluck/__init__.py turns off gRPC's fork
handlers, which left such children with half-copied gRPC threads)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CHILDREN = 20


@pytest.mark.timeout(120)
def test_children_forked_during_grpc_calls_all_exit_cleanly(monkeypatch):
    monkeypatch.delenv("GRPC_ENABLE_FORK_SUPPORT", raising=False)  # potluck's default, not the caller's
    script = Path(__file__).with_name("fork_with_grpc.py")
    result = subprocess.run([sys.executable, str(script), str(CHILDREN)], capture_output=True, text=True,
                            timeout=100)
    assert result.returncode == 0, result.stderr[-2000:]
    codes = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    print(f"\nexit statuses of {CHILDREN} children forked during gRPC calls: {codes}")
    # gRPC's fork handlers ran, and were skipped, at every fork before the fix: each fork logged it.
    assert "skipping fork() handlers" not in result.stderr
    assert codes == {0: CHILDREN}, codes
