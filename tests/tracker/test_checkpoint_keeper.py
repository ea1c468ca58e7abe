"""The checkpoint keeper saves a usable model at or past every multiple of its period, even when the
verifier skips the very epoch, and never twice for one period."""

from __future__ import annotations

import pytest
import torch

from potluck.errors import ConfigError
from potluck.node.checkpoint_file import read_checkpoint
from potluck.node.tasks import get_task
from potluck.tracker.verifier.checkpoint_keeper import CheckpointKeeper

pytestmark = pytest.mark.timeout(30)


def test_the_first_state_at_or_past_each_multiple_is_saved(tmp_path):
    keeper = CheckpointKeeper(tmp_path / "checkpoints", 5, "synthetic", {"hidden": 32}, "swarm-x")
    keeper.ledger_entries_seen = 41
    trained = get_task("synthetic", {"hidden": 32}).build_model()
    with torch.no_grad():
        next(trained.parameters()).add_(1.0)  # not the initial state
    saved = [epoch for epoch in (0, 3, 4, 6, 7, 9, 10, 11, 17) if keeper.offer(epoch, trained)]
    assert saved == [6, 10, 17]  # epoch 5 was never offered; 15 neither
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "model-epoch-000006.safetensors", "model-epoch-000010.safetensors", "model-epoch-000017.safetensors"]
    checkpoint = read_checkpoint(tmp_path / "checkpoints" / "model-epoch-000017.safetensors")
    assert (checkpoint.epoch, checkpoint.task, checkpoint.params, checkpoint.origin,
            checkpoint.ledger_entries_seen) == (17, "synthetic", {"hidden": 32}, "swarm-x", 41)
    model = get_task(checkpoint.task, checkpoint.params).build_model()
    model.load_state_dict(checkpoint.tensors)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), trained.parameters(), strict=True))


def test_a_file_that_is_not_a_checkpoint_is_refused_by_name(tmp_path):
    pickled = tmp_path / "model.pt"
    torch.save({"model": {}}, pickled)  # a pickle: never loaded, so it runs no code
    with pytest.raises(ConfigError, match=r"model.pt: not a safetensors checkpoint"):
        read_checkpoint(pickled)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(ConfigError, match=r"other.safetensors: not a potluck checkpoint"):
        read_checkpoint(tmp_path / "other.safetensors")


def test_without_a_directory_nothing_is_saved(tmp_path):
    keeper = CheckpointKeeper(None, 1, "synthetic", {}, "swarm-x")
    assert keeper.offer(3, get_task("synthetic", {}).build_model()) is None
