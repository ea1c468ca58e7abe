"""The held-out loss (tracker/verifier/held_out.py): the same windows of the eval shards every time,
so a model that learned shows a lower loss than the one it started from; and how it reaches
`swarm status` (the verifier's event, through the tracker's stats)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from potluck.node.tasks import get_task
from potluck.tracker.data import PrepareConfig, prepare_dataset
from potluck.tracker.verifier.held_out import EVAL_EVERY, HeldOut

pytestmark = pytest.mark.timeout(120)
CORPUS = Path(__file__).parent / "corpus_es"
PARAMS = {"vocab_size": 300, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "seq_len": 16}


def test_a_model_that_learned_scores_lower_on_the_held_out_text(tmp_path):
    tables = prepare_dataset([CORPUS], tmp_path / "d", PrepareConfig(name="q", license="x", owner="o",
                                                                     vocab_size=300, eval_share=0.2))
    shard = {t["kind"]: (t["sha256"], (tmp_path / "d" / t["name"]).read_bytes()) for t in tables}
    held_out = HeldOut("lm", PARAMS, [shard["eval"]], b"swarm seed")
    again = HeldOut("lm", PARAMS, [shard["eval"]], b"swarm seed")
    assert all(torch.equal(a, b) for a, b in zip(held_out.batches, again.batches, strict=True))  # same windows
    train = get_task("lm", PARAMS, shards=[shard["train"]])
    model = train.build_model()
    before = held_out.loss(model, 0)
    assert abs(before - math.log(300)) < 0.5  # an untrained model: about chance
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(80):
        optimizer.zero_grad()
        train.loss(model, train.make_batch(b"s", "ab" * 32, 0, step, 16)).backward()
        optimizer.step()
    after = held_out.loss(model, 2)
    print(f"\nheld-out loss: {before:.3f} untrained, {after:.3f} after 80 steps")
    assert after < 0.8 * before
    assert not held_out.due(2 + EVAL_EVERY - 1) and held_out.due(2 + EVAL_EVERY)
