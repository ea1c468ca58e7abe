"""When cheating loses in expectation: the condition on a report's collateral, and on the policy.

The threat model (docs/threat-model.md): a volunteer may run any code and hold many accounts. What
it can gain is credit for work it did not do. Take one report claiming `c` FLOPs of which a share
`f` (0 < f <= 1; 1 is a made-up report) was not done, from an account whose collateral is `C`:

* the report is drawn for recomputation with probability `s` (the policy's sampling rate; the draw is
  a keyed hash of the signed report, which the node cannot predict), and a drawn report with a
  share `f` made up fails with probability at least `DETECTION * f` (a drawn segment holds made-up
  micro-batches with probability at least `f`, and one made-up segment fails its comparison with
  probability at least `DETECTION`; every drawn segment checked after the first only helps);
* undetected, the cheat gains `f * c` over honest work; detected, the account loses the report's
  whole claim and its collateral: its escrow (every grant not yet vested) and every credit vested
  since its last passed recomputation, forfeited and clawed back in one ledger entry
  (credit_policy.py). A confirmed cheat costs exactly that; a second one before the account is
  forgiven bans it.

Data credit adds to the gain: each grant also pays the owners of the text its samples came from up to
`d` (the manifest's data share) of its claim (potluck/data_credit.py), and an owner may be the cheat's
accomplice, or the cheat itself. So undetected, a cheat gains at most `(1 + d) * f * c`, and every
bound below is taken on the claim times `1 + d` (the owners' data credit of forfeited grants is
forfeited too, but it is not counted as collateral: it need not be the cheat's).

With p = s * DETECTION * f the chance of being caught, the expected gain over honesty is at most
(1 - p) * f * c - p * C, which is <= 0 for every f as soon as

    C >= (1 + d) * c / (s * DETECTION)                                    (1)

(since (1 - p) * f * c / p <= c / (s * DETECTION)). So the policy samples a report at rate `s` only when (1)
holds for it, and recomputes it otherwise: a fresh account (no collateral) is checked until its
escrow covers its claims, and so is a claim far above the account's usual one. Every strategy is a
sequence of such reports: padding by any factor, made-up reports, cheating now and then, free riding
(its zero gradients fail the sketch comparison: f = 1), many Sybil accounts (each starts with no
collateral, so each is checked in full until it has put up honest work); griefing is a separate
matter (nobody is charged for what another key signed: verification.py). Measured on the real policy
code: benchmarks/cheating.py.

When an honest account's report is drawn, the rest of its escrow holds `escrow_depth - 1` claims of
its usual size (the oldest vests as the newest arrives), so (1) lets its reports be sampled at rate `s`
only if

    escrow_depth - 1 >= (1 + d) / (s * DETECTION)                         (2)

A policy below (2) would recompute every report of every account and call it sampling, so
`swarm sign` and `swarm start` refuse it (`check_deterrence`). An honest account's credit then vests
`escrow_depth` reports after it was earned, once every check due on the way has passed.
"""

from __future__ import annotations

import math

from potluck.entries import PPM
from potluck.errors import ConfigError

# A lower bound on the probability that a drawn segment holding made-up micro-batches fails its
# recomputation. Made-up losses and sketches must match the verifier's to within a relative tolerance
# of about 1e-3 on SKETCH_DIM values at once; every such segment in the tests has failed. 0.95 leaves
# room for a cheater that guesses losses well (the sketch, a random projection, it cannot guess).
DETECTION = 0.95


def least_escrow_depth(sampling_rate: float, data_share_ppm: int = 0) -> int:
    """The smallest escrow depth that satisfies (2) at `sampling_rate` and the data share."""
    return 1 + math.ceil((1.0 + data_share_ppm / PPM) / (sampling_rate * DETECTION) - 1e-9)


def deters(collateral: int, claim: int, sampling_rate: float, data_share_ppm: int = 0) -> bool:
    """Whether (1) holds: losing `collateral` when caught outweighs what `claim` could gain undetected."""
    return collateral * sampling_rate * DETECTION * PPM >= claim * (PPM + data_share_ppm)


def deterrence_problem(sampling_rate: float, escrow_depth: int, data_share_ppm: int = 0) -> str | None:
    """What is wrong with a credit policy under which cheating would not lose in expectation (None if nothing)."""
    least = least_escrow_depth(sampling_rate, data_share_ppm)
    if escrow_depth >= least:
        return None
    share = f" and data_share {data_share_ppm / PPM:g}" if data_share_ppm else ""
    return (f"must be at least {least} at sampling_rate {sampling_rate:g}{share}, or cheating pays (escrow_depth - 1 "
            f">= (1 + data_share) / (sampling_rate x {DETECTION:g}), tracker/credit/deterrence.py): raise it, or raise "
            f"sampling_rate")


def check_deterrence(policy) -> None:
    """Refuse a signed manifest's credit policy that violates (2), naming the key and the bound."""
    problem = deterrence_problem(policy.sampling_rate, policy.escrow_depth, policy.data_share_ppm)
    if problem is not None:
        raise ConfigError(f"the manifest's credits.escrow_depth {policy.escrow_depth} {problem}")
