"""Windows of text: fixed-length slices of a task's shards that never cross a shard's end, drawn by
keyed hash (so a node cannot choose its data, and the verifier draws the same ones)."""

from __future__ import annotations

import bisect
import itertools

from potluck.draw import derive_sample_seed, uniform_indices
from potluck.errors import ConfigError


class Windows:
    """The windows of `length` items in shards of `sizes` items, numbered shard by shard."""

    def __init__(self, sizes: list[int], length: int, task: str, unit: str = "tokens"):
        self.length, self.task, self.unit = length, task, unit
        self.starts = list(itertools.accumulate((max(0, size - length + 1) for size in sizes), initial=0))
        self.count = self.starts[-1]

    def draw(self, data_seed: bytes, account_id: str, epoch: int, step: int, batch_size: int,
             label: bytes) -> list[tuple[int, int]]:
        """(shard, offset) of each window of the batch `account_id` trains on at (epoch, step)."""
        if self.count == 0:
            raise ConfigError(f"task {self.task}: no shard holds a full window of seq_len + 1 = {self.length} "
                              f"{self.unit}")
        seed = derive_sample_seed(data_seed, account_id, epoch, step)
        return [self.locate(index) for index in uniform_indices(seed, batch_size, self.count, label=label)]

    def locate(self, index: int) -> tuple[int, int]:
        shard = bisect.bisect_right(self.starts, index) - 1
        return shard, index - self.starts[shard]
