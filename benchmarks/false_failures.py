"""How often an honest report fails its recomputation: a real swarm of honest volunteers, every report
recomputed (the local swarm's policy), counted from the tracker's own verdicts. One JSON object.

Run: .venv/bin/python benchmarks/false_failures.py [--nodes N] [--epochs N]
(`--epochs 70` with 3 nodes makes over 200 recomputation checks; about 10 minutes on 2 cores.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from potluck.entries import decode_entry  # noqa: E402
from potluck.tracker.swarm.local_swarm import LocalSwarm, local_swarm_config  # noqa: E402
from potluck.tracker_client import TrackerClient  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=70)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        swarm = LocalSwarm(Path(tmp), config_text=local_swarm_config("false-failures", num_nodes=args.nodes),
                           num_nodes=args.nodes)
        try:
            info = swarm.start()
            for i in range(args.nodes):
                swarm.start_node(f"honest-{i}", max_epochs=args.epochs)
                time.sleep(1.0)
            codes = swarm.wait_nodes(60 * args.epochs)
            with TrackerClient(info["tracker"], rpc_timeout=10) as client:
                deadline = time.monotonic() + 120
                while client.status().verifier.outstanding_jobs and time.monotonic() < deadline:
                    time.sleep(0.5)
                status = client.status()
                entries = [decode_entry(d) for chunk in client.entries(0, status.tree_size) for d in chunk]
        finally:
            swarm.stop()
    kinds = [e.WhichOneof("kind") for e in entries]
    verifier = status.verifier
    print(json.dumps({
        "nodes": args.nodes, "epochs_each": args.epochs, "exit_codes": codes,
        "reports_logged": kinds.count("grant"),
        "recomputation_checks": verifier.recomputed + verifier.failed,
        "recomputed_and_passed": verifier.recomputed, "failed": verifier.failed,
        "given_up": verifier.unverifiable, "passed_without_recomputing": verifier.passed,
        "honest_accounts_penalized": len({getattr(e, k).account_id for e, k in zip(entries, kinds, strict=True)
                                          if k in ("strike", "forfeit", "ban")}),
        "vests": kinds.count("vest"), "total_s": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
