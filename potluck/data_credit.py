"""Data owners' credit: what each grant pays the owners of the swarm's training text.

Each grant credits the owner of every training shard `data_share` of the compute it paid for, in
proportion to the owner's share of the swarm's training windows (the windows of seq_len + 1 items
a node's samples are drawn from, uniformly, by keyed hash: potluck/windows.py):

    owner credit = grant FLOPs × data_share × owner's windows / all windows   (rounded down)

which is what the samples the grant paid for are worth to each owner in expectation. Not the
windows a report happened to draw: the swarm seed is in the manifest and accounts are free, so a
volunteer could grind accounts and epochs for draws that land on a friend's text; the expected
share cannot be steered, and costs nothing to check (no redraw, by the tracker or the auditor).

Data credit is on top of the volunteer's compute credit, not taken from it, and shares the grant's
fate: it sits in escrow with the grant, vests when the grant vests, and is forfeited when the grant
is (potluck/entries.py): text nobody really trained on earns nothing. Owners are named as the
manifest names them (`owner` of each dataset table): an account id (64 hex digits) makes the data
credit land in that account's balance, next to its compute credit. Tasks that generate their own
data (`synthetic`) credit no owner.
"""

from __future__ import annotations

from collections import Counter

from potluck.entries import credits_text, data_flops
from potluck.errors import VerificationError
from potluck.manifest import is_training, param_dict
from potluck.proto.ledger_pb2 import DataCredit
from potluck.proto.manifest_pb2 import Manifest
from potluck.token_shards import HEADER, token_width
from potluck.windows import Windows

TEXT_TASKS = ("charlm", "lm")  # the tasks that train on the manifest's shards
# Owners of one swarm's training text. Every grant names each one (potluck/identity.py bounds a name to
# MAX_OWNER_BYTES), and must still fit a ledger entry beside the largest report (proto/wire.py).
MAX_OWNERS = 16


def training_items(task: str, params: dict, size_bytes: int) -> int:
    """Items (tokens, or bytes) a training shard of `size_bytes` holds, as the task reads it."""
    if task == "lm":  # a header, then tokens of 2 or 4 bytes by the vocabulary (potluck/token_shards.py)
        return max(0, size_bytes - HEADER.size) // token_width(params["vocab_size"])
    return size_bytes  # charlm trains on the bytes themselves


class DataSplit:
    """Each owner's training windows, from the signed manifest alone; what a grant pays each."""

    def __init__(self, manifest: Manifest):
        self.share_ppm = manifest.credit_policy.data_share_ppm
        self.windows: Counter[str] = Counter()  # owner -> its training windows
        task = manifest.task.name
        if task not in TEXT_TASKS or not self.share_ppm:
            return
        try:
            params = param_dict(manifest.task)
            length = params["seq_len"] + 1
            for shard in filter(is_training, manifest.datasets):
                items = training_items(task, params, shard.size_bytes)
                self.windows[shard.owner] += Windows([items], length, task).count
        except (KeyError, TypeError) as e:
            raise VerificationError(f"the manifest's task {task} lacks a usable parameter ({e})") from None
        if len(self.windows) > MAX_OWNERS:
            raise VerificationError(f"the manifest's training shards have {len(self.windows)} owners; at most "
                                    f"{MAX_OWNERS} can be credited")

    @property
    def total(self) -> int:
        """Training windows in all the shards (0: no owner is credited)."""
        return sum(self.windows.values())

    def credits(self, grant_flops: int, flops_per_credit: int) -> list[DataCredit]:
        """The data credits a grant of `grant_flops` carries, one per owner with windows, in owner order."""
        total = self.total
        return [DataCredit(owner=owner, windows=windows,
                           flops=(flops := data_flops(grant_flops, self.share_ppm, windows, total)),
                           credits=credits_text(flops, flops_per_credit))
                for owner, windows in sorted(self.windows.items()) if windows and total]
