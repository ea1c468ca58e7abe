"""Crash safety: a writer SIGKILLed at random moments (mid-commit included) loses nothing it acknowledged,
and the log it leaves behind verifies and stays consistent with the last checkpoint it signed."""

import base64
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ledgerkit import ORIGIN
from nacl.signing import SigningKey

from potluck.tlog import leaf_hash, root_from_leaf_hashes, verify_checkpoint, verify_consistency
from potluck.tracker.ledger.high_water import HighWaterMark
from potluck.tracker.ledger.ledger import MAX_ENTRIES_PER_READ, Ledger
from potluck.tracker.ledger.store import open_store

pytestmark = pytest.mark.timeout(300)

TRIALS = 20
WRITER = Path(__file__).with_name("crash_writer.py")
TESTS = Path(__file__).resolve().parents[1]
LOG_KEY = SigningKey(b"\x07" * 32)


def run_and_kill(location: str, seed: int, kill_after: float, mark: Path) -> tuple[dict[int, str], str | None]:
    """Start a writer, SIGKILL it `kill_after` seconds after it is ready; return what it acknowledged."""
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    writer = subprocess.Popen([sys.executable, str(WRITER), location, str(seed), str(mark)], stdout=subprocess.PIPE,
                              text=True, env=env)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in writer.stdout:
            if line.startswith("ready"):
                ready.set()
            lines.append(line)
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "writer did not start"
        time.sleep(kill_after)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=30)
        reader.join(timeout=30)
    acked, note = {}, None
    for line in lines:
        # A line cut off by the kill is not an acknowledgement: require its full form.
        parts = line.split()
        if parts[0] == "ack" and len(parts) == 3 and len(parts[2]) == 64 and line.endswith("\n"):
            acked[int(parts[1])] = parts[2]
        elif parts[0] == "checkpoint" and line.endswith("\n"):
            note = base64.b64decode(parts[1]).decode()
    assert writer.returncode == -signal.SIGKILL
    return acked, note


def test_sigkill_trials(store_location, tmp_path):
    # The high-water mark beside the key: a kill between writing it and storing the checkpoint must
    # not keep the next start from opening.
    mark = tmp_path / "log.mark"
    rng = random.Random(6962)
    all_acked: dict[int, str] = {}
    last_note = None
    for trial in range(TRIALS):
        acked, note = run_and_kill(store_location, seed=trial, kill_after=rng.uniform(0.0, 0.4), mark=mark)
        all_acked.update(acked)
        last_note = note or last_note
        ledger = Ledger(open_store(store_location), origin=ORIGIN, log_key=LOG_KEY, mark=HighWaterMark(mark))
        try:
            leaves = [leaf_hash(d) for start in range(0, ledger.size, MAX_ENTRIES_PER_READ)
                      for d in ledger.entries(start, min(start + MAX_ENTRIES_PER_READ, ledger.size))]
            for index, expected in all_acked.items():
                assert index < len(leaves), f"trial {trial}: acknowledged entry {index} is gone"
                assert leaves[index].hex() == expected, f"trial {trial}: entry {index} changed"
            assert root_from_leaf_hashes(leaves) == ledger.tree.root(), f"trial {trial}: tree does not verify"
            if last_note is not None:
                old = verify_checkpoint(last_note, ledger.verifier_key)
                new = verify_checkpoint(ledger.checkpoint(), ledger.verifier_key)
                verify_consistency(old.size, new.size, old.root_hash, new.root_hash,
                                   ledger.consistency_proof(old.size, new.size))
        finally:
            ledger.store.close()
    assert len(all_acked) > TRIALS, "the writer acknowledged too little for the trials to mean anything"
