"""`potluck audit verify` against an honest tracker: a clean pass, incremental re-runs, and the real console script."""

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from auditkit import ACCOUNTS, VERIFIER_KEY

pytestmark = pytest.mark.timeout(90)


def test_honest_log_verifies_and_a_rerun_downloads_only_new_entries(tracker, log40, tmp_path):
    state = tmp_path / "auditor"
    tracker.serve(log40[:30], "first30")
    first = tracker.verify(state)
    assert first.exit_code == 0, first.output
    assert "verified potluck.swarm/test/ledger at size 30" in first.stdout
    assert "balances of 3 accounts match the tracker's" in first.stdout
    assert (state / "checkpoint").is_file() and len((state / "entries").read_bytes().splitlines()) == 30

    tracker.serve(log40, "all40")
    again = tracker.verify(state, "--json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["ok"] is True and summary["problems"] == []
    assert (summary["tree_size"], summary["previous_size"], summary["new_entries"]) == (40, 30, 10)
    assert summary["balances_compared"] is True
    assert set(summary["accounts"]) == {a.account_id for a in ACCOUNTS}
    vested = summary["accounts"][ACCOUNTS[0].account_id]["vested_flops"]
    assert vested > 0  # the vest at index 6 moved two grants out of escrow
    assert tracker.service.ledger.balances.accounts[ACCOUNTS[0].account_id].vested_flops == vested

    unchanged = tracker.verify(state, "--json")
    assert unchanged.exit_code == 0 and json.loads(unchanged.stdout)["new_entries"] == 0


def test_the_console_script_verifies_and_keeps_json_on_stdout(tracker, log40, tmp_path):
    """A real `potluck` process, its stderr a terminal (so the progress bar is drawn there), stdout a pipe."""
    tracker.serve(log40, "all40")
    log_pub = tmp_path / "log.pub"
    log_pub.write_text(VERIFIER_KEY + "\n")
    script = Path(sys.executable).parent / "potluck"
    controller, terminal = pty.openpty()
    drawn = bytearray()
    reader = threading.Thread(target=_drain, args=(controller, drawn), daemon=True)
    reader.start()
    try:
        run = subprocess.run([str(script), "audit", "verify", "--tracker", tracker.address, "--log-key",
                              str(log_pub), "--state-dir", str(tmp_path / "auditor"), "--json"],
                             stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=60, env={**os.environ})
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    assert run.returncode == 0, drawn.decode(errors="replace")
    summary = json.loads(run.stdout)
    assert summary["ok"] is True and summary["tree_size"] == 40 and len(summary["accounts"]) == 3
    assert b"replaying entries" in drawn  # the bar went to the terminal, not into the JSON


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # the terminal side closed
            return
        if not data:
            return
        into += data


def test_default_state_lives_under_potluck_home(tracker, log40, potluck_home):
    tracker.serve(log40, "all40")
    result = tracker.verify(None)
    assert result.exit_code == 0, result.output
    [state] = (potluck_home / "audit").iterdir()
    assert state.name.startswith("potluck.swarm_test_ledger-") and (state / "checkpoint").is_file()
