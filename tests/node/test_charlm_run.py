"""`charlm` learns: a small character-level transformer trained by a real hivemind peer on potluck's own docs.

The corpus ships with the tests (tests/node/corpus, pinned by SHA256SUMS as a manifest pins its
shards) and is loaded only through `load_shards`, so training starts from bytes checked by sha256.
The peer is a `TrainingWorker` forked into a process group of its own; alone in its run, it skips
averaging and closes an epoch every couple of micro-batches.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import shutil
import signal
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from proctree import descendant_pids

from potluck.errors import VerificationError
from potluck.node.hivemind_config import HivemindConfig
from potluck.node.tasks import get_task, load_shards
from potluck.node.training import TrainingConfig, TrainingWorker
from potluck.proto.wire import SKETCH_DIM, num_segments

CTX = mp.get_context("fork")
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


def _train(shards: list[tuple[str, bytes]], out: mp.Queue, stop) -> None:
    os.setpgid(0, 0)
    torch.set_num_threads(1)  # two cores shared with other swarms
    logging.getLogger("hivemind").setLevel(logging.WARNING)
    try:
        task = get_task("charlm", PARAMS, shards=shards)
        hivemind = HivemindConfig(run_id="potluck_test_charlm", initial_peers=(),
                                  target_batch_size=STEPS_PER_WINDOW * BATCH_SIZE, learning_rate=3e-3,
                                  matchmaking_time=1.0, averaging_timeout=5.0, compression="none")
        config = TrainingConfig(hivemind=hivemind, data_seed=b"potluck charlm test seed", account_id=ACCOUNT,
                                batch_size_per_step=BATCH_SIZE)
        worker = TrainingWorker(config, task, on_window=lambda stats: out.put(("window", asdict(stats))))
        worker.run(stop, max_windows=NUM_WINDOWS)
        out.put(("done", task.num_parameters()))
    except BaseException:
        out.put(("failed", traceback.format_exc()))
        raise SystemExit(1) from None
    finally:
        out.close()
        out.join_thread()


def run_charlm(shards: list[tuple[str, bytes]]) -> tuple[list[dict], int, float]:
    """Train in a forked peer; return its windows, the model's parameter count and the training time."""
    out, stop = CTX.Queue(), CTX.Event()
    process = CTX.Process(target=_train, args=(shards, out, stop), daemon=False)
    started = time.monotonic()
    process.start()
    with contextlib.suppress(OSError):  # the child does it too; whoever is first wins the race
        os.setpgid(process.pid, process.pid)
    windows, outcome = [], None
    try:
        while outcome is None and time.monotonic() - started < TRAIN_TIMEOUT:
            try:
                kind, payload = out.get(timeout=0.5)
            except queue.Empty:
                if not process.is_alive():
                    break
                continue
            if kind == "window":
                windows.append(payload)
            else:
                outcome = (kind, payload)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        deadline = time.monotonic() + 20
        while process.is_alive() and time.monotonic() < deadline:  # keep reading: the child flushes its queue
            with contextlib.suppress(queue.Empty):
                out.get(timeout=0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its DHT and p2pd too
        process.join(10)
        out.close()
    assert outcome is not None, f"no result within {TRAIN_TIMEOUT:.0f}s ({len(windows)} windows closed)"
    assert outcome[0] == "done", outcome[1]
    return windows, outcome[1], elapsed


@pytest.mark.timeout(180)
def test_charlm_loss_falls_on_the_shipped_corpus():
    shards = load_shards(corpus_shards())
    assert sum(len(data) for _, data in shards) >= 10_000
    windows, num_parameters, elapsed = run_charlm(shards)

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
