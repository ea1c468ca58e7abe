"""What the wire contract fixes beyond the .proto files, read by both ends from here: the sizes of
messages and reports, and how a window's micro-batches are cut into sketched segments."""

from __future__ import annotations

# gRPC messages in either direction, on every channel and server of potluck's.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Reports travel in batches (a reporter sends its outbox so); their acks carry each report again, in
# its receipt, so a message of 2 MiB of reports is answered within the 4 MiB message limit.
MAX_REPORTS_PER_MESSAGE = 64
MAX_MESSAGE_REPORT_BYTES = 2 * 1024 * 1024
# A ledger entry, and so a report, which must fit in the grant entry that logs it with room for the
# grant's own fields (~0.3 KB): a window of up to ~21k micro-batches (4 bytes of loss each, 64 of sketch per 8).
MAX_ENTRY_BYTES = 256 * 1024
MAX_REPORT_BYTES = MAX_ENTRY_BYTES - 4096
# The groupmates' attestations one report may carry, and the size of each (an honest one is ~0.3 KB).
# hivemind's averaging groups are a handful of peers; a node keeps the first this many that verify.
MAX_ATTESTATIONS_PER_REPORT = 64
MAX_ATTESTATION_BYTES = 1024

# Epochs a report may lead the newest epoch of any report the tracker admitted. Honest peers are within
# one of each other, but a peer's report can arrive before its peers' (their reporters back off on their
# own), and a peer that reloads the swarm's state skips the epochs it missed. A rejection is final, so the
# slack is generous: the bound is against made-up epochs (10^6), and lets an account lead the swarm by this
# much per logged report.
EPOCH_SLACK = 8
# Nodes ignore hivemind progress records beyond the same bound (node/progress_bound.py).

# Each segment's gradient is sketched to this many values; reports carry one sketch per segment.
SKETCH_DIM = 16
# Micro-batches per segment. The verifier recomputes whole segments, so this multiplies its cost per check.
STEPS_PER_SKETCH = 8


def num_segments(num_steps: int) -> int:
    """How many sketched segments a window of `num_steps` micro-batches has."""
    return -(-num_steps // STEPS_PER_SKETCH)


def segment_steps(segment: int, num_steps: int) -> range:
    """The micro-batches (local steps) of one segment of a window of `num_steps`."""
    return range(segment * STEPS_PER_SKETCH, min((segment + 1) * STEPS_PER_SKETCH, num_steps))
