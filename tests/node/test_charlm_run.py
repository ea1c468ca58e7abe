"""`charlm` learns: a small character-level transformer trained by a real hivemind peer on potluck's own docs.

The corpus ships with the tests (tests/node/corpus, pinned by SHA256SUMS as a manifest pins its
shards) and is loaded only through `load_shards`, so training starts from bytes checked by sha256.
The peer is a `TrainingWorker` in a process (and session) of its own; alone in its run, it skips
averaging and closes an epoch every couple of micro-batches.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from proctree import descendant_pids

from potluck.errors import VerificationError
from potluck.node.tasks import load_shards
from potluck.proto.wire import SKETCH_DIM, num_segments

CORPUS = Path(__file__).parent / "corpus"
PARAMS = {"d_model": 64, "n_layers": 2, "n_heads": 4, "seq_len": 64}
BATCH_SIZE = 32
STEPS_PER_WINDOW = 2
NUM_WINDOWS = 60
# Measured here: ~0.1 s a window on one core, loss 5.55 (ln 256) -> ~2.5 after 60 windows (~2.2x).
LOSS_FALL = 1.5
TRAIN_TIMEOUT = 90.0
ACCOUNT = "c4" * 32


def corpus_shards() -> dict[str, Path]:
    """The corpus files by the sha256 that SHA256SUMS pins (as `sha256sum` writes it)."""
    pinned = {}
    for line in (CORPUS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        pinned[digest] = CORPUS / name.lstrip("*")
    return pinned


# The peer runs in a fresh interpreter: forked from pytest, which holds earlier tests' threads (gRPC,
# event loops), a child could inherit a lock held mid-operation and hang (it did, 2 runs in 4, in its DHT).
CHILD = """
import json, logging, sys, torch
from dataclasses import asdict
from potluck.node.hivemind_config import HivemindConfig
from potluck.node.tasks import get_task, load_shards
from potluck.node.training import TrainingConfig, TrainingWorker
pinned, params, account, steps, batch, windows = json.loads(sys.argv[1])
torch.set_num_threads(1)  # two cores shared with other swarms
logging.getLogger("hivemind").setLevel(logging.WARNING)
task = get_task("charlm", params, shards=load_shards(pinned))
hivemind = HivemindConfig(run_id="potluck_test_charlm", initial_peers=(), target_batch_size=steps * batch,
                          learning_rate=3e-3, matchmaking_time=1.0, averaging_timeout=5.0, compression="none")
config = TrainingConfig(hivemind=hivemind, data_seed=b"potluck charlm test seed", account_id=account,
                        batch_size_per_step=batch)
emit = lambda kind, payload: print(json.dumps([kind, payload], default=lambda o: o.hex()), flush=True)
worker = TrainingWorker(config, task, on_window=lambda stats: emit("window", asdict(stats)))
worker.run(max_windows=windows)
emit("done", task.num_parameters())
"""


def run_charlm() -> tuple[list[dict], int, float]:
    """Train in a peer of its own (its own session: its DHT and p2pd go with it); return its windows, the
    model's parameter count and the training time."""
    args = json.dumps([{d: str(p) for d, p in corpus_shards().items()}, PARAMS, ACCOUNT, STEPS_PER_WINDOW,
                       BATCH_SIZE, NUM_WINDOWS])
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", CHILD, args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        out, err = child.communicate(timeout=TRAIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # anything of its session still there
    elapsed = time.monotonic() - started
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("[")]
    windows = [payload for kind, payload in lines if kind == "window"]
    done = [payload for kind, payload in lines if kind == "done"]
    assert done, (f"no result within {TRAIN_TIMEOUT:.0f}s (exit {child.returncode}, {len(windows)} windows closed): "
                  f"{err[-2000:]}")
    return windows, done[0], elapsed


@pytest.mark.timeout(180)
def test_charlm_loss_falls_on_the_shipped_corpus():
    assert sum(len(data) for _, data in load_shards(corpus_shards())) >= 10_000
    windows, num_parameters, elapsed = run_charlm()

    assert [w["epoch"] for w in windows] == list(range(NUM_WINDOWS))
    for window in windows:
        assert window["samples"] == BATCH_SIZE * len(window["losses"])
        assert window["tokens"] == window["samples"] * PARAMS["seq_len"]
        assert len(window["sketch"]) == SKETCH_DIM * num_segments(len(window["losses"]))
        assert not window["averaged"] and "no other peers" in window["averaging_error"]

    def mean_loss(some: list[dict]) -> float:
        losses = [loss for w in some for loss in w["losses"]]
        return sum(losses) / len(losses)

    first, last = mean_loss(windows[:3]), mean_loss(windows[-5:])
    print(f"charlm ({num_parameters} parameters, {NUM_WINDOWS} windows of {STEPS_PER_WINDOW}x{BATCH_SIZE} "
          f"samples, {elapsed:.1f}s): loss {first:.3f} -> {last:.3f} ({first / last:.2f}x)")
    assert first == pytest.approx(torch.log(torch.tensor(256.0)).item(), abs=0.3)  # an untrained model guesses
    assert first / last >= LOSS_FALL
    assert descendant_pids(os.getpid()) == []


@pytest.mark.timeout(30)
def test_a_corpus_file_that_differs_from_its_pinned_hash_is_refused(tmp_path):
    pinned = corpus_shards()
    copies = {digest: shutil.copy(path, tmp_path / path.name) for digest, path in pinned.items()}
    victim = Path(copies[min(copies)])
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x20  # one letter's case
    victim.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=f"shard {victim}: expected sha256 {min(copies)}, got "):
        load_shards(copies)
