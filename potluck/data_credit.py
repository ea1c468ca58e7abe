"""Data owners' credit: who owns the samples a grant paid for, and what they earn for them.

A node does not choose its data: the windows it trains on at (epoch, step) are drawn by keyed hash
from the signed manifest's swarm seed (potluck/windows.py). So anyone holding the manifest can
rebuild, from a report alone, which training shard every one of its samples came from, and so whose
text it was: the tracker when it writes the grant, the auditor when it replays the log.

Each grant credits the owner of every shard its samples came from `data_share` of the compute those
samples paid for: owner credit = samples from the owner's shards × FLOPs per sample × data_share
(in parts per million, rounded down per owner and grant). It is on top of the volunteer's compute
credit, not taken from it, and it shares the grant's fate: it sits in escrow with the grant, vests
when the grant vests, and is forfeited when the grant is (potluck/entries.py): text nobody really
trained on earns nothing.

Owners are named as the manifest names them (`owner` of each dataset table): an account id (64 hex
digits) makes the owner's data credit land in that account's balance, next to its compute credit.
Tasks that generate their own data (`synthetic`) credit no owner.
"""

from __future__ import annotations

from collections import Counter

from potluck.entries import credits_text, data_flops
from potluck.proto.ledger_pb2 import DataCredit
from potluck.proto.manifest_pb2 import Manifest
from potluck.proto.report_pb2 import ContributionReport
from potluck.token_shards import HEADER, token_width
from potluck.windows import Windows

TEXT_TASKS = ("charlm", "lm")  # the tasks that train on the manifest's shards


class DataSplit:
    """Which owner's shard each sample of a report came from, rebuilt from the signed manifest alone."""

    def __init__(self, manifest: Manifest):
        self.share_ppm = manifest.credit_policy.data_share_ppm
        self.task = manifest.task.name
        self.seed = manifest.swarm_seed
        params = {key: getattr(value, value.WhichOneof("kind")) for key, value in manifest.task.params.items()}
        shards = sorted((s for s in manifest.datasets if s.kind in ("", "train")), key=lambda s: s.sha256)
        self.owners = [shard.owner for shard in shards]
        self.windows: Windows | None = None
        if self.task in TEXT_TASKS and shards and self.share_ppm:
            if self.task == "lm":  # token shards: a header, then tokens of 2 or 4 bytes (potluck/token_shards.py)
                width = token_width(params["vocab_size"])
                sizes = [max(0, shard.size_bytes - HEADER.size) // width for shard in shards]
            else:  # charlm trains on the bytes themselves
                sizes = [shard.size_bytes for shard in shards]
            self.windows = Windows(sizes, params["seq_len"] + 1, self.task)
        self._label = f"{self.task}/windows".encode()

    @property
    def active(self) -> bool:
        """Whether grants of this swarm credit data owners at all."""
        return self.windows is not None and self.windows.count > 0

    def samples_by_owner(self, report: ContributionReport) -> Counter[str]:
        """How many of the report's samples came from each owner's shards (micro-batch i is step i)."""
        counts: Counter[str] = Counter()
        if not self.active:
            return counts
        for step in range(len(report.losses)):
            for shard, _ in self.windows.draw(self.seed, report.account_id, report.epoch, step, report.batch_size,
                                              label=self._label):
                counts[self.owners[shard]] += 1
        return counts

    def credits(self, report: ContributionReport, flops_per_sample: int, flops_per_credit: int) -> list[DataCredit]:
        """The data credits a grant for `report` carries, one per owner, in owner order."""
        return [DataCredit(owner=owner, num_samples=samples,
                           flops=(flops := data_flops(samples, flops_per_sample, self.share_ppm)),
                           credits=credits_text(flops, flops_per_credit))
                for owner, samples in sorted(self.samples_by_owner(report).items())]
