"""Honest throughput under a report flood, for `benchmarks/tracker.py --flood` (issue 14).

A real tracker process (tests/floodkit.py); honest volunteers, each sending one report per
`interval` on a stream of its own, first alone and then while the red team's client floods it on
`streams` streams with junk reports (~250 KiB, 883 copies of one validly signed attestation, from
self-made accounts) and maximal reports (64 attestations, from accounts it registered). The honest
load is paced, so the ratio says what the flood takes from it (goal: at least 0.5); the tracker's
resident memory is read before the flood, after it, and at its peak.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from floodkit import TrackerProcess, rss_bytes, run_honest, start_flood, stop  # noqa: E402
from swarmkit import make_manifest  # noqa: E402

GOAL_RATIO = 0.5


def flood_figures(*, seconds: float, streams: int, volunteers: int = 3, interval: float = 0.5) -> dict:
    with tempfile.TemporaryDirectory(prefix="potluck-bench-flood-") as tmp:
        directory = Path(tmp)
        manifest = make_manifest(directory)
        path = directory / "swarm.manifest"
        path.write_bytes(manifest.envelope)
        tracker = TrackerProcess(directory / "tracker", manifest.envelope)
        try:
            alone = run_honest(tracker.port, path, directory / "alone", volunteers, interval, seconds)
            before = rss_bytes(tracker.pid)
            flood = start_flood(tracker.port, path, directory / "flood", streams, seconds + 4)
            try:
                time.sleep(1.0)  # the flood under way
                flooded = run_honest(tracker.port, path, directory / "flooded", volunteers, interval, seconds)
                after = rss_bytes(tracker.pid)
            finally:
                stop(flood)
            flood_counts = flood.stdout.read().strip().splitlines()
        finally:
            tracker.stop()
    per_minute = {name: 60 * run["logged"] / run["seconds"] for name, run in (("alone", alone), ("flooded", flooded))}
    ratio = per_minute["flooded"] / per_minute["alone"] if per_minute["alone"] else 0.0
    mib = 2 ** 20
    return {
        "honest_grants_per_min_unflooded": round(per_minute["alone"], 1),
        "honest_grants_per_min_flooded": round(per_minute["flooded"], 1),
        "ratio": round(ratio, 3), "goal_ratio": GOAL_RATIO, "meets_goal": ratio >= GOAL_RATIO,
        "honest_problems_flooded": flooded["problems"],
        "tracker_rss_mib": {"before_flood": round(before["rss"] / mib, 1), "after_flood": round(after["rss"] / mib, 1),
                            "peak": round(after["peak"] / mib, 1)},
        "flood_client": json.loads(flood_counts[-1]) if flood_counts else None,
        "sizes": {"seconds": seconds, "flood_streams": streams, "honest_volunteers": volunteers,
                  "honest_interval_s": interval},
    }
