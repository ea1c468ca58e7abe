"""hivemind's view of the swarm's epoch, bounded by the tracker's: what a made-up progress record cannot move.

Every peer publishes a progress record in the DHT (its epoch, the samples it accumulated). Only its
owner can write a record (hivemind signs each subkey with the peer's key, and every DHT node checks
the signature), but the owner writes whatever it likes. hivemind takes the swarm's epoch to be the
highest any record claims, so one record at epoch 10^6 would move every honest peer there:

* `Optimizer.step` sees itself behind, downloads the swarm's state, is still behind (no honest
  state is at 10^6) and downloads again, every step: it never trains again;
* or, closing an epoch, it steps to `max(local + 1, global)`, and the tracker refuses every report
  of that epoch (more than EPOCH_SLACK ahead of any it admitted).

An honest peer is never that far ahead: the tracker refuses its reports beyond the same bound. So a
record more than EPOCH_SLACK ahead of both this peer's own epoch and the newest epoch the tracker has
admitted is ignored, here, before hivemind reads it. The tracker's epoch lets a peer that joins late
catch up (its own is 0); its own epoch keeps it training with the swarm through a tracker outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hivemind.optim.progress_tracker import ProgressTracker

from potluck.proto.wire import EPOCH_SLACK

logger = logging.getLogger(__name__)

MAX_LOGGED = 16  # a peer may write records under any number of fresh keys: the log says so for the first few


class BoundedProgressTracker(ProgressTracker):
    """hivemind's ProgressTracker, reading only the progress records within `tracker_epoch() + EPOCH_SLACK`
    (or this peer's epoch + EPOCH_SLACK, whichever is higher)."""

    def __init__(self, *args, tracker_epoch: Callable[[], int], **kwargs) -> None:
        self._tracker_epoch = tracker_epoch  # set before the thread that reads records starts
        self._ignored: set = set()  # subkeys logged as ignored: each once, the first MAX_LOGGED of them
        self.ignored_records = 0
        super().__init__(*args, **kwargs)

    @property
    def epoch_ceiling(self) -> int:
        return max(self._tracker_epoch(), self.local_progress.epoch) + EPOCH_SLACK

    def _parse_swarm_progress_data(self, metadata):
        if isinstance(metadata, dict):
            ceiling = self.epoch_ceiling
            kept = {}
            for subkey, entry in metadata.items():
                epoch = entry.value.get("epoch", 0) if isinstance(getattr(entry, "value", None), dict) else 0
                if isinstance(epoch, int) and epoch > ceiling:
                    self.ignored_records += 1
                    if subkey not in self._ignored and len(self._ignored) < MAX_LOGGED:
                        self._ignored.add(subkey)
                        logger.warning("ignoring a progress record at epoch %d: more than %d ahead of the swarm's "
                                       "(at most %d)", epoch, EPOCH_SLACK, ceiling)
                    continue
                kept[subkey] = entry
            metadata = kept
        return super()._parse_swarm_progress_data(metadata)
