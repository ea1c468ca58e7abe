"""What cheating earns under the real credit policy, simulated: one JSON object.

Each simulated account sends `--reports` reports through the tracker's own `CreditPolicy` (the same
code: the keyed draw, the collateral rule, forfeits and claw-backs), and its verifier outcomes follow
its strategy. A drawn report with a share `f` of made-up work fails with probability
DETECTION x (1 - (1 - f)^SEGMENTS_PER_CHECK) (each drawn segment holds made-up micro-batches with
probability f; tracker/credit/deterrence.py uses the weaker bound DETECTION x f). Strategies:

* honest: every drawn report recomputes and passes;
* pad: every 2nd report claims 1.8x its work (f = 0.44);
* pad_unseen: the same, naming a starting state nobody has: a drawn one fails (its peer cannot serve it);
* fabricate: after the new-account checks (honest), every report made up (f = 1);
* fabricate_then_stop: after them, 3 made-up reports, then honest for good;
* intermittent: 1 report in 5 padded 1.8x;
* strategic: pads 1.8x whenever it is not under scrutiny, honest while it is (the attacker can read
  its own state), so that each strike is forgiven and it starts again;
* big_claim: honest, but every 10th report claims 5x its work (f = 0.8);
* sybil: fabricates from a fresh account every `--sybil-every` reports.

Printed per policy and strategy: `net_per_work` (credit vested and not clawed back, over the work the
account did: honest ~1 less what is still in escrow at the end; above honest is profit; made-up work
has none: then `net_per_honest_equivalent` says what it took for nothing), the share of accounts
struck, the median reports to the first strike (detection latency), the median reports to the first
vest, and the share of reports recomputed (the verifier's cost). Policies: the swarm template's, the
a middle one, and two at the edge of what `swarm sign` accepts (escrow_depth = the least deterrence.py
allows at that rate, no new-account checks).

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
from potluck.tracker.credit.deterrence import DETECTION, least_escrow_depth  # noqa: E402
from potluck.tracker.verifier.recompute import SEGMENTS_PER_CHECK  # noqa: E402

WORK = 1000  # FLOPs of one honest report
POLICIES = {
    "template (0.25, depth 6, 5 new checks)": dict(sampling_rate=0.25, escrow_depth=6, new_account_checks=5),
    "0.5, least depth, 2 new checks": dict(sampling_rate=0.5, escrow_depth=least_escrow_depth(0.5),
                                           new_account_checks=2),
    "edge (0.1, least depth, 0 new checks)": dict(sampling_rate=0.1, escrow_depth=least_escrow_depth(0.1),
                                                   new_account_checks=0),
    "edge (0.05, least depth, 0 new checks)": dict(sampling_rate=0.05, escrow_depth=least_escrow_depth(0.05),
                                                    new_account_checks=0),
}
STRATEGIES = ("honest", "pad", "pad_unseen", "fabricate", "fabricate_then_stop", "intermittent", "strategic",
              "big_claim", "sybil")


def report(strategy: str, nth: int, under_scrutiny: bool, scrutiny_reports: int) -> tuple[int, int, bool]:
    """(FLOPs claimed, FLOPs really computed, whether a drawn check can be done at all) of an account's nth
    report (from 0), as its strategy makes it."""
    if strategy in ("pad", "pad_unseen") and nth % 2 == 1 or strategy == "intermittent" and nth % 5 == 4 \
            or strategy == "strategic" and not under_scrutiny:
        return int(1.8 * WORK), WORK, strategy != "pad_unseen"
    if strategy == "big_claim" and nth % 10 == 9:
        return 5 * WORK, WORK, True
    if strategy == "fabricate" and nth >= scrutiny_reports or strategy == "sybil" \
            or strategy == "fabricate_then_stop" and scrutiny_reports <= nth < scrutiny_reports + 3:
        return WORK, 0, True
    return WORK, WORK, True


def fails(claim: int, done: int, checkable: bool, rng: random.Random) -> bool:
    """Whether a drawn report fails its check."""
    if not checkable:
        return True  # its peer cannot serve the state it names
    made_up = 1 - done / claim
    return made_up > 0 and rng.random() < DETECTION * (1 - (1 - made_up) ** SEGMENTS_PER_CHECK)


def simulate(strategy: str, fields: dict, accounts: int, reports: int, sybil_every: int, rng: random.Random) -> dict:
    message = PolicyMessage(version=1, flops_per_credit=10**15, **fields)
    policy = CreditPolicy(message, origin="sim", check_key=os.urandom(32), accounts=Accounts("sim", message))
    index = net = work = checked = 0
    first_strike, first_vest, struck_accounts = [], [], 0
    for a in range(accounts):
        account, nth, struck, vested_yet = f"{strategy}-{a}-0", 0, False, False
        for r in range(reports):
            if strategy == "sybil" and r and r % sybil_every == 0:
                account, nth = f"{strategy}-{a}-{r}", 0  # a fresh Sybil account
            state = policy.accounts.get(account)
            claim, done, checkable = report(strategy, nth, state.scrutiny_left > 0 or state.frozen,
                                            fields["new_account_checks"])
            index, nth, work = index + 1, nth + 1, work + done
            entries = policy.on_grant(account, index, claim, checked=True)
            if policy.should_check(account, rng.randbytes(32), index):
                checked += 1
                outcome = Outcome.FAILED if fails(claim, done, checkable, rng) else Outcome.RECOMPUTED
            else:
                outcome = Outcome.PASSED
            entries += policy.on_check(Verdict(index=index, account_id=account, outcome=outcome, check="recompute",
                                               reason="simulated"))
            for entry in entries:
                kind = entry.WhichOneof("kind")
                if kind == "vest":
                    net += entry.vest.flops
                    if not vested_yet:
                        vested_yet = True
                        first_vest.append(r + 1)
                elif kind == "forfeit":
                    net -= entry.forfeit.clawed_back_flops
                elif kind == "strike" and not struck:
                    struck = True
                    first_strike.append(r + 1)
        struck_accounts += struck
        policy.accounts.states.clear()  # each simulated account is independent; keep memory flat
    honest_equivalent = accounts * reports * WORK
    return {
        "net_per_work": round(net / work, 3) if work else None,
        "net_per_honest_equivalent": round(net / honest_equivalent, 4),
        "share_struck": round(struck_accounts / accounts, 3),
        "median_reports_to_first_strike": statistics.median(first_strike) if first_strike else None,
        "median_reports_to_first_vest": statistics.median(first_vest) if first_vest else None,
        "share_recomputed": round(checked / (accounts * reports), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000, help="Simulated accounts per strategy and policy.")
    parser.add_argument("--reports", type=int, default=80, help="Reports per account.")
    parser.add_argument("--sybil-every", type=int, default=10, help="Reports before a Sybil takes a fresh account.")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    for name, fields in POLICIES.items():
        rng = random.Random(args.seed)
        results[name] = {s: simulate(s, fields, args.accounts, args.reports, args.sybil_every, rng)
                         for s in STRATEGIES}
        honest = results[name]["honest"]["net_per_work"]
        results[name]["worst_cheat_over_honest"] = max(
            (results[name][s]["net_per_work"] or 0) / honest for s in STRATEGIES if s != "honest")
    print(json.dumps({
        "accounts_per_strategy": args.accounts, "reports_per_account": args.reports, "detection": DETECTION,
        "target": "net_per_work of every cheating strategy below honest's (worst_cheat_over_honest < 1); sybil "
                  "does no work at all: its net_per_honest_equivalent must be 0",
        "policies": results, "total_s": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
