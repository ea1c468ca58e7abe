"""What cheating earns under the real credit policy, simulated: one JSON object.

Each simulated account sends `--reports` reports through the tracker's own `CreditPolicy` (the
same code, the same keyed draw), and its verifier outcomes follow its strategy:

* honest: every drawn report recomputes and passes;
* pad_detectable: every 2nd report claims 1.8x its work; a drawn padded report fails recomputation
  with probability `--detect` (the share of drawn segments that hold a padded micro-batch);
* pad_unverifiable: the same padding, naming a starting state the verifier never sees, so a drawn
  padded report is "unverifiable" (the hole issue 11 measured);
* fabricate: claims work it never did, every report; detected when drawn with probability `--detect`;
* intermittent: honest, but 1 report in 5 padded 1.8x (detectable);
* sybil: fabricate from a fresh account every `--sybil-every` reports (new accounts are fully checked).

Printed per strategy: vested credit relative to the work the account really did (`vested_per_work`,
honest ~1; above 1 is profit: every cheat must stay at or below 1), vested relative to the work it
claimed, the share of accounts ever struck, and the median reports until the first strike; and the
honest median reports until the first vest. Policies: the swarm template's, the ones the issue
tried, and the edge of what `swarm sign` accepts (no deterrence condition is enforced yet).

Run: .venv/bin/python benchmarks/cheating.py [--accounts N] [--reports N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from potluck.proto.manifest_pb2 import CreditPolicy as PolicyMessage  # noqa: E402
from potluck.tracker.credit import Accounts, CreditPolicy, Outcome, Verdict  # noqa: E402

WORK = 1000  # FLOPs of one honest report
POLICIES = {
    "template (0.1, depth 3, 5 new checks)": dict(sampling_rate=0.1, escrow_depth=3, new_account_checks=5),
    "sampling 0.5, depth 3": dict(sampling_rate=0.5, escrow_depth=3, new_account_checks=5),
    "sampling 0.1, depth 10": dict(sampling_rate=0.1, escrow_depth=10, new_account_checks=5),
    "edge swarm sign accepts (0.001, depth 0, 0 new checks)": dict(sampling_rate=0.001, escrow_depth=0,
                                                                    new_account_checks=0),
}


def plan(strategy: str, n: int) -> list[tuple[int, int, str]]:
    """Per report: (FLOPs claimed, FLOPs really computed, what a drawn check of it finds)."""
    reports = []
    for i in range(n):
        padded = (strategy in ("pad_detectable", "pad_unverifiable") and i % 2 == 1) or \
                 (strategy == "intermittent" and i % 5 == 4)
        if strategy in ("fabricate", "sybil"):
            reports.append((WORK, 0, "cheat"))
        elif padded:
            reports.append((int(1.8 * WORK), WORK, "unverifiable" if strategy == "pad_unverifiable" else "cheat"))
        else:
            reports.append((WORK, WORK, "honest"))
    return reports


def simulate(strategy: str, policy_fields: dict, accounts: int, reports: int, detect: float, sybil_every: int,
             rng: random.Random) -> dict:
    message = PolicyMessage(version=1, flops_per_credit=10**15, **policy_fields)
    policy = CreditPolicy(message, origin="sim", check_key=os.urandom(32), accounts=Accounts("sim", message))
    index = 0
    vested = claimed = work = 0
    first_strike, first_vest, struck_accounts = [], [], 0
    for a in range(accounts):
        account, nth, struck, vested_yet = f"{strategy}-{a}-0", 0, False, False
        for r, (claim, done, kind) in enumerate(plan(strategy, reports)):
            if strategy == "sybil" and r and r % sybil_every == 0:
                account, nth = f"{strategy}-{a}-{r}", 0  # a fresh Sybil account
            index, nth = index + 1, nth + 1
            claimed, work = claimed + claim, work + done
            entries = policy.on_grant(account, index, claim, checked=True)
            if policy.should_check(account, rng.randbytes(32)):
                if kind == "cheat" and rng.random() < detect:
                    outcome = Outcome.FAILED
                elif kind == "unverifiable":
                    outcome = Outcome.UNVERIFIABLE
                else:
                    outcome = Outcome.RECOMPUTED
            else:
                outcome = Outcome.PASSED
            entries += policy.on_check(Verdict(index=index, account_id=account, outcome=outcome, check="recompute",
                                               reason="simulated"))
            for entry in entries:
                kind_ = entry.WhichOneof("kind")
                if kind_ == "vest":
                    vested += entry.vest.flops
                    if not vested_yet:
                        vested_yet = True
                        first_vest.append(r + 1)
                elif kind_ == "strike" and not struck:
                    struck = True
                    first_strike.append(r + 1)
        struck_accounts += struck
        policy.accounts.states.clear()  # each simulated account is independent; keep memory flat
    honest_equivalent = accounts * reports * WORK
    return {
        "vested_per_work": round(vested / work, 3) if work else None,
        "vested_per_honest_equivalent": round(vested / honest_equivalent, 3),
        "vested_per_claim": round(vested / claimed, 3),
        "share_struck": round(struck_accounts / accounts, 3),
        "median_reports_to_first_strike": statistics.median(first_strike) if first_strike else None,
        "median_reports_to_first_vest": statistics.median(first_vest) if first_vest else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000, help="Simulated accounts per strategy and policy.")
    parser.add_argument("--reports", type=int, default=60, help="Reports per account.")
    parser.add_argument("--detect", type=float, default=0.99, help="P(a drawn cheating report fails its check).")
    parser.add_argument("--sybil-every", type=int, default=10, help="Reports before a Sybil takes a fresh account.")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    strategies = ("honest", "pad_detectable", "pad_unverifiable", "fabricate", "intermittent", "sybil")
    results = {}
    for name, fields in POLICIES.items():
        rng = random.Random(args.seed)
        results[name] = {s: simulate(s, fields, args.accounts, args.reports, args.detect, args.sybil_every, rng)
                         for s in strategies}
    print(json.dumps({
        "accounts_per_strategy": args.accounts, "reports_per_account": args.reports, "detect": args.detect,
        "target": "vested_per_work <= 1.0 for every cheating strategy (honest ~1)",
        "note": "fabricate and sybil do no work: vested_per_honest_equivalent is what they take for nothing",
        "policies": results, "total_s": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
