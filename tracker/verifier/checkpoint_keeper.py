"""The checkpoint keeper: the swarm's model, saved to the lead's state dir every N epochs, as safetensors
(node/checkpoint_file.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from potluck.atomic_file import write_file_atomically
from potluck.node.checkpoint_file import checkpoint_bytes

logger = logging.getLogger(__name__)


class CheckpointKeeper:
    """Saves the first state it is offered at or past each multiple of `every` epochs.

    The verifier offers the swarm's state when it loads it, once an epoch it sees; it can skip an
    epoch (a busy loop, a peer already further on), so "at or past" rather than "at".
    """

    def __init__(self, directory: Path | None, every: int, task_name: str, task_params: dict, origin: str = ""):
        self.directory, self.every, self.task_name, self.task_params = directory, every, task_name, task_params
        self.origin = origin
        self.saved_epoch = 0
        self.ledger_entries_seen = 0  # the verifier raises it as jobs come

    def offer(self, epoch: int, model) -> Path | None:
        """Save `model` (at `epoch`) if a multiple of `every` was passed since the last save; atomically."""
        if self.directory is None or epoch // self.every <= self.saved_epoch // self.every:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"model-epoch-{epoch:06d}.safetensors"
        write_file_atomically(path, checkpoint_bytes(model, epoch=epoch, task=self.task_name, params=self.task_params,
                                                     origin=self.origin,
                                                     ledger_entries_seen=self.ledger_entries_seen))
        self.saved_epoch = epoch
        logger.info("saved the swarm's model at epoch %d to %s", epoch, path)
        return path
