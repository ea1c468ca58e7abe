"""Task `lm`: a Llama decoder (transformers) on the token shards `data prepare` writes, here from
Spanish text (tests/tracker/corpus_es). Its data is derived, never chosen; it learns; and the
verifier's recomputation reproduces an honest node's windows within its tolerances."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from windowkit import node_windows

from potluck.errors import ConfigError
from potluck.node.tasks import get_task
from potluck.proto.report_pb2 import ContributionReport
from potluck.token_shards import decode_shard, encode_shard
from potluck.tracker.data import PrepareConfig, prepare_dataset
from potluck.tracker.verifier.recompute import LOSS_RTOL, SKETCH_RTOL, compare, pick_segments, recompute

pytestmark = pytest.mark.timeout(300)
CORPUS = Path(__file__).parents[1] / "tracker" / "corpus_es"
VOCAB = 300  # near bytes: on 3 KB of text, a larger vocabulary overfits before it generalises
PARAMS = {"vocab_size": VOCAB, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "seq_len": 32}
SEED, ACCOUNT = b"lm test seed", "cd" * 32


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "data"
    tables = prepare_dataset([CORPUS], out, PrepareConfig(name="q", license="LicenseRef-public-domain",
                                                          owner="o", vocab_size=VOCAB, eval_share=0.15))
    shards = {t["kind"]: (t["sha256"], (out / t["name"]).read_bytes()) for t in tables
              if t["kind"] != "tokenizer"}
    return shards, out


def test_batches_are_derived_windows_of_the_shards(prepared):
    shards, _ = prepared
    task = get_task("lm", PARAMS, shards=[shards["train"]])
    batch = task.make_batch(SEED, ACCOUNT, epoch=2, step=5, batch_size=8)
    assert batch.shape == (8, 33) and batch.dtype == torch.long
    assert torch.equal(batch, task.make_batch(SEED, ACCOUNT, epoch=2, step=5, batch_size=8))
    assert not torch.equal(batch, task.make_batch(SEED, "ef" * 32, epoch=2, step=5, batch_size=8))
    tokens = decode_shard(shards["train"][1]).astype(np.int64)
    for row in batch.tolist():  # each a window of the shard, as it is there
        starts = np.flatnonzero(tokens[:len(tokens) - 32] == row[0])
        assert any(tokens[s:s + 33].tolist() == row for s in starts)


def test_the_model_is_the_same_on_every_peer_and_priced_as_the_literature_does(prepared):
    task = get_task("lm", PARAMS)
    first, second = task.build_model(), task.build_model()
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True))
    parameters = sum(p.numel() for p in first.parameters())
    assert task.flops_per_sample() == 6 * parameters * 32 + 12 * 2 * 64 * 32 ** 2


def test_shards_that_are_not_the_tasks_are_refused(prepared):
    with pytest.raises(ConfigError, match="not a token shard"):
        get_task("lm", PARAMS, shards=[("ab" * 32, b"plain text, not tokens" * 10)])
    with pytest.raises(ConfigError, match=rf"holds token id 500, beyond task.params.vocab_size = {VOCAB}"):
        get_task("lm", PARAMS, shards=[("ab" * 32, encode_shard(np.array([1, 500, 2]), 2))])
    with pytest.raises(ConfigError, match="task.params.num_heads: must divide hidden_size"):
        get_task("lm", {**PARAMS, "num_heads": 3})


def test_it_learns_the_text_held_out_loss_well_below_chance(prepared):
    shards, _ = prepared
    torch.manual_seed(0)
    train = get_task("lm", PARAMS, shards=[shards["train"]])
    held_out = get_task("lm", {**PARAMS, "seq_len": 16}, shards=[shards["eval"]])
    model = train.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(100):
        optimizer.zero_grad()
        train.loss(model, train.make_batch(SEED, ACCOUNT, 0, step, 16)).backward()
        optimizer.step()
    with torch.no_grad():
        loss = sum(held_out.loss(model, held_out.make_batch(SEED, ACCOUNT, 0, s, 16)).item() for s in range(4)) / 4
    print(f"\nheld-out loss after 100 steps: {loss:.3f} (chance: ln {VOCAB} = {math.log(VOCAB):.3f})")
    assert loss < 0.75 * math.log(VOCAB)


def test_honest_windows_pass_recomputation_and_the_margin_is_measured(prepared):
    shards, _ = prepared
    path = prepared[1] / "q-train-000.tokens"
    setup = (f"from pathlib import Path\ntask = get_task('lm', {PARAMS!r}, "
             f"shards=[({shards['train'][0]!r}, Path({str(path)!r}).read_bytes())])")
    steps, batch = 12, 4
    windows = node_windows(setup, SEED, ACCOUNT, num_windows=3, steps=steps, batch=batch)
    torch.set_num_threads(1)
    task = get_task("lm", PARAMS, shards=[shards["train"]])
    worst_loss = worst_sketch = 0.0
    for window in windows:
        report = ContributionReport(account_id=ACCOUNT, epoch=window["epoch"], batch_size=batch,
                                    losses=window["losses"],
                                    num_samples=steps * batch, gradient_sketch=window["sketch"])
        model = task.build_model()
        with torch.no_grad():
            for param, values in zip(model.parameters(), window["state"], strict=True):
                param.copy_(torch.tensor(values))
        segments = pick_segments(b"k" * 32, os.urandom(32), steps)
        recomputed = recompute(task, model, report, SEED, segments)
        compare(report, recomputed)
        worst_loss = max([worst_loss] + [abs(recomputed.losses[s] - report.losses[s]) / report.losses[s]
                                         for s in recomputed.losses])
        for segment, sketch in recomputed.sketches.items():
            claimed = torch.tensor(report.gradient_sketch[segment * 16:(segment + 1) * 16])
            worst_sketch = max(worst_sketch, ((claimed - torch.tensor(sketch)).norm() / claimed.norm()).item())
    print(f"\nlm recomputation on the CPU (2 threads vs 1): worst loss deviation {worst_loss:.2e} (tolerance "
          f"{LOSS_RTOL}), worst sketch deviation {worst_sketch:.2e} (tolerance {SKETCH_RTOL})")
    assert worst_loss < LOSS_RTOL / 10 and worst_sketch < SKETCH_RTOL / 10
