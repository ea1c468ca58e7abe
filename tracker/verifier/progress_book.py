"""Stage (b)'s evidence: what each peer's own hivemind progress record said it had trained."""

from __future__ import annotations

import logging

from potluck.proto.report_pb2 import ContributionReport

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between reads of the swarm's progress records
# Claims beyond this multiple of the peer's own record are recomputed on every drawn segment (an honest
# peer's record lags its last steps, so it may be suspected, and then passes). A tripled window of one
# micro-batch is 3x its record.
OVERCLAIM_FACTOR = 2.0
# Without a state to recompute on, only a claim this far above the peer's own record fails: an honest
# peer would have to publish 60% of its epoch's progress between two of our polls for us to miss it.
FLAGRANT_OVERCLAIM_FACTOR = 2.5


class ProgressBook:
    """The largest sample count each peer's own progress record showed for each epoch.

    Read by a thread of its own: a peer's record for a short window lasts a second or so, and the
    verifier's loop can be busy for longer (downloading a state, recomputing).
    """

    def __init__(self):
        self.samples: dict[tuple[str, int], int] = {}

    def follow(self, dht, run_id: str, stop) -> None:
        failing = False
        while not stop.is_set():
            try:
                self.read(dht, run_id)
                failing = False
            except Exception as e:  # the DHT shutting down under us, or a peer's garbage
                if not failing:  # once per spell of failures: stage (b) is blind meanwhile
                    logger.warning("could not read the swarm's progress records: %s", e)
                failing = True
            stop.wait(POLL_INTERVAL)

    def read(self, dht, run_id: str) -> None:
        import base58

        found = dht.get(f"{run_id}_progress", latest=True)
        if found is None or not isinstance(found.value, dict):
            return
        for entry in found.value.values():
            record = entry.value
            try:
                peer_id = base58.b58encode(record["peer_id"]).decode()
                key = (peer_id, int(record["epoch"]))
                self.samples[key] = max(self.samples.get(key, 0), int(record["samples_accumulated"]))
            except (KeyError, TypeError, ValueError):
                continue

    def suspicion(self, report: ContributionReport, factor: float = OVERCLAIM_FACTOR, slack: int = 0) -> str | None:
        """Why the peer's own records contradict its claim (beyond `slack` samples), or None when they do not."""
        seen = self.samples.get((report.peer_id, report.epoch))
        if seen and report.num_samples > factor * seen + slack:
            return (f"claims {report.num_samples} samples in epoch {report.epoch}, but the peer's own hivemind "
                    f"progress record showed at most {seen}")
        return None
