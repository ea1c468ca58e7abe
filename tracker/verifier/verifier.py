"""The verifier: a hivemind peer that follows the swarm's model and checks sampled reports.

It runs in a `GroupProcess` of its own (hivemind objects in its main thread). It joins the DHT as
a client, keeps the model states of recent epochs (keyed by digest: the swarm's, loaded from peers
once an epoch, and those fetched for checks), tells the tracker how far apart the states each epoch's
reports started from lie, watches every peer's hivemind progress record, and answers check jobs from
the tracker:

* stage (b), every report: the peer's own progress record for that epoch should support the
  samples claimed. The DHT is polled, so a record can be missed: a disagreement is suspicion, not
  proof, and sends the report to stage (c) whatever the draw said;
* stage (c), sampled or suspicious reports: rebuild a few claimed segments of micro-batches on the
  state the report started from and recompute their losses and gradient sketches. A state the
  verifier does not hold is asked of the peer the report came from (its account's bound peer), by
  digest, within a time and size budget (state_fetcher.py), several downloads side by side with a
  share for new accounts (states.py). A peer that cannot serve it after
  `FETCH_ATTEMPTS` tries fails the check: a report that cannot be checked must not earn credit, or
  naming a state nobody can see would be a free pass for padding (issue 11 measured it vest).

Nothing a peer writes in the DHT picks the states checked: the report names its state and its peer.
The swarm's epoch from hivemind's progress records (the highest any peer claims) is taken no further
than one past the newest epoch of the reports the tracker accepted, so a record claiming epoch 10^12
cannot make the verifier chase an epoch nobody trains.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import hivemind
import torch

from potluck.errors import VerificationError
from potluck.node.hivemind_config import make_optimizer
from potluck.node.sketch import state_digest
from potluck.node.tasks import get_task
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import PURPOSE_REPORT, open_envelope
from potluck.tracker.credit import Outcome, Verdict
from potluck.tracker.verifier.checkpoint_keeper import CheckpointKeeper
from potluck.tracker.verifier.held_out import HeldOut
from potluck.tracker.verifier.messages import HeldOutLoss, Job, Spread, VerifierReady, VerifierSpec
from potluck.tracker.verifier.progress_book import ProgressBook
from potluck.tracker.verifier.recompute import SEGMENTS_PER_CHECK, compare, recompute
from potluck.tracker.verifier.spread import relative_spread
from potluck.tracker.verifier.state_fetcher import StateFetcher
from potluck.tracker.verifier.states import FETCH_ATTEMPTS, States, Wanted

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between turns of the loop
LOAD_STATE_TIMEOUT = 15.0


def run_verifier(stop, events, spec: VerifierSpec, jobs) -> None:
    """Entry point of the verifier's `GroupProcess`; `jobs` is a queue of `Job`s from the tracker."""
    torch.set_num_threads(1)  # a verifier must not starve the swarm's volunteers of CPU
    run_id = spec.hivemind.run_id
    task = get_task(spec.task_name, spec.task_params, shards=spec.shards or None, initial_state=spec.initial_state)
    follower, checker = task.build_model(), task.build_model()
    dht = hivemind.DHT(initial_peers=list(spec.hivemind.initial_peers), client_mode=True, start=True)
    # The nodes' own optimizer (a client that never steps): it follows the swarm's epoch and loads its state.
    optimizer = make_optimizer(spec.hivemind, dht=dht, params=follower.parameters(),
                               payload_for_round=lambda: (0, b""), batch_size_per_step=1)
    keeper = CheckpointKeeper(Path(spec.checkpoint_dir) if spec.checkpoint_dir else None, spec.checkpoint_every,
                              spec.task_name, spec.task_params, spec.origin)
    held_out = (HeldOut(spec.task_name, spec.task_params, spec.eval_shards, spec.data_seed)
                if spec.eval_shards else None)
    states = States(StateFetcher(dht, run_id, spec.fetch_daemon), checker)
    states.add(state_digest(follower), 0, follower)
    progress = ProgressBook()
    threading.Thread(target=progress.follow, args=(dht, run_id, stop), daemon=True, name="progress").start()
    pending: list[_Pending] = []
    epoch = newest_reported = 0
    started_by_epoch: dict[int, Counter[bytes]] = defaultdict(Counter)  # epoch -> start digest -> reports
    events.put(VerifierReady())
    try:
        while not stop.is_set():
            averager = optimizer.state_averager
            # hivemind's global epoch is the highest any peer claims: bounded by what the tracker has accepted.
            global_epoch = min(optimizer.tracker.global_progress.epoch, newest_reported + 1)
            if global_epoch > epoch:
                epoch = global_epoch
                if epoch > averager.local_epoch:  # once an epoch: the swarm's peers have better things to do
                    loaded = _load_swarm_state(averager, follower, states, keeper)
                    if loaded and held_out is not None and held_out.due(averager.local_epoch):
                        events.put(HeldOutLoss(averager.local_epoch, held_out.loss(follower, averager.local_epoch)))
            for job in _drain(jobs):
                item = _Pending(job, _open(job, spec))
                report = item.report
                newest_reported = max(newest_reported, report.epoch)
                keeper.ledger_entries_seen = max(keeper.ledger_entries_seen, job.index + 1)
                started_by_epoch[report.epoch][report.state_digest] += 1
                pending.append(item)
            for done in [e for e in started_by_epoch if e < newest_reported - 1]:
                spread = _spread(done, started_by_epoch.pop(done), states, parameter_names(follower))
                if spread is not None:
                    events.put(spread)
            still_pending = []
            for item in pending:
                verdict = _decide(item, spec, task, checker, states, progress)
                if verdict is None:
                    still_pending.append(item)
                else:
                    if item.wanted is not None:
                        states.drop(item.wanted)
                    events.put(verdict)
            pending = still_pending
            states.trim()
            stop.wait(POLL_INTERVAL)
    finally:
        states.fetcher.close()
        optimizer.shutdown()
        dht.shutdown()


class _Pending:
    """A job and its report, with its need of a state the verifier does not hold, once it has one."""

    def __init__(self, job: Job, report: ContributionReport):
        self.job, self.report = job, report
        self.wanted: Wanted | None = None


def parameter_names(model) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def _open(job: Job, spec: VerifierSpec) -> ContributionReport:
    return ContributionReport.FromString(open_envelope(job.envelope, purpose=PURPOSE_REPORT,
                                                       origin=spec.origin).payload)


def _load_swarm_state(averager, follower, states: States, keeper: CheckpointKeeper) -> bool:
    """The state of a peer hivemind picks among the furthest on; offered to the checkpoint keeper."""
    # One attempt, bounded (Optimizer.load_state_from_peers retries forever once peers are gone).
    try:
        averager.load_state_from_peers(timeout=LOAD_STATE_TIMEOUT)
    except Exception as e:  # a peer that leaves mid-download sends a truncated state
        logger.warning("could not load the swarm's state: %s", e)
        return False
    digest = state_digest(follower)
    if states.get(digest) is None:
        states.add(digest, averager.local_epoch, follower)
    keeper.offer(averager.local_epoch, follower)
    return True


def _spread(epoch: int, started: Counter[bytes], states: States, names: list[str]) -> Spread | None:
    """How far apart the states `epoch`'s reports started from lie (one per report), once the epoch is over.

    Only states already held count (the swarm's, and those fetched for checks): fetching one just to
    measure would let any report stall the verifier's loop for a fetch's timeout at no cost to its
    sender. An epoch with fewer than two reports measured says nothing."""
    measured = [(states.get(digest), n) for digest, n in started.items() if states.get(digest) is not None]
    count = sum(n for _, n in measured)
    if count < 2:
        return None
    if len(measured) == 1:
        return Spread(epoch, count, 0.0)
    return Spread(epoch, count, relative_spread([[state[name] for name in names]
                                                 for state, n in measured for _ in range(n)]))


def _drain(jobs) -> list[Job]:
    found = []
    while True:
        try:
            found.append(jobs.get_nowait())
        except (queue.Empty, OSError, ValueError):
            return found


def _decide(item: _Pending, spec: VerifierSpec, task, checker, states: States,
            progress: ProgressBook) -> Verdict | None:
    """A verdict for the job, or None while the state it needs is still being asked for."""
    job, report = item.job, item.report
    suspicion = progress.suspicion(report)
    if suspicion is None and not job.sampled:
        return Verdict(index=job.index, account_id=report.account_id, outcome=Outcome.PASSED, check="progress")
    snapshot = states.get(report.state_digest)
    if snapshot is None:
        if item.wanted is None:
            item.wanted = Wanted(job, report.account_id, report.peer_id, report.state_digest, report.epoch)
        snapshot = states.obtain(item.wanted)
        if snapshot is None:
            if not item.wanted.given_up:
                return None
            return Verdict(index=job.index, account_id=report.account_id, outcome=Outcome.FAILED, check="recompute",
                           reason=f"its peer did not serve the start state {report.state_digest.hex()[:16]}… it "
                                  f"names ({FETCH_ATTEMPTS} tries; the last: {item.wanted.errors[-1]})"
                                  + (f"; and it {suspicion}" if suspicion else ""))
    checker.load_state_dict(snapshot)
    started = time.process_time()
    try:
        # A suspicious claim gets all the drawn segments: a padded window hides few real ones.
        segments = list(job.segments) if suspicion else list(job.segments[:SEGMENTS_PER_CHECK])
        compare(report, recompute(task, checker, report, spec.data_seed, segments))
        outcome, reason = Outcome.RECOMPUTED, ""
    except VerificationError as e:
        outcome, reason = Outcome.FAILED, str(e) + (f"; and it {suspicion}" if suspicion else "")
    return Verdict(index=job.index, account_id=report.account_id, outcome=outcome, check="recompute", reason=reason,
                   cpu_seconds=time.process_time() - started)
