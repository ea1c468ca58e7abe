"""The checkpoint keeper saves a usable model at or past every multiple of its period, even when the
verifier skips the very epoch, and never twice for one period."""

from __future__ import annotations

import pytest
import torch

from potluck.node.tasks import get_task
from potluck.tracker.verifier.checkpoint_keeper import CheckpointKeeper

pytestmark = pytest.mark.timeout(30)


def test_the_first_state_at_or_past_each_multiple_is_saved(tmp_path):
    task = get_task("synthetic", {})
    keeper = CheckpointKeeper(tmp_path / "checkpoints", 5, "synthetic", {})
    saved = [epoch for epoch in (0, 3, 4, 6, 7, 9, 10, 11, 17) if keeper.offer(epoch, task.build_model())]
    assert saved == [6, 10, 17]  # epoch 5 was never offered; 15 neither
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "model-epoch-000006.pt", "model-epoch-000010.pt", "model-epoch-000017.pt"]
    checkpoint = torch.load(tmp_path / "checkpoints" / "model-epoch-000017.pt", weights_only=True)
    model = get_task(checkpoint["task"], checkpoint["params"]).build_model()
    model.load_state_dict(checkpoint["model"])
    assert checkpoint["epoch"] == 17


def test_without_a_directory_nothing_is_saved(tmp_path):
    keeper = CheckpointKeeper(None, 1, "synthetic", {})
    assert keeper.offer(3, get_task("synthetic", {}).build_model()) is None
