"""The verifier: a hivemind peer that follows the swarm's model and checks sampled reports.

It runs in a `GroupProcess` of its own (hivemind objects in its main thread). It joins the DHT as
a client, keeps the model states of recent epochs (downloaded from peers, keyed by digest; peers
announce the digest they start each window from, so the states of peers out of step are fetched
too), tells the tracker how far apart the announced states of each epoch lie, watches every peer's
hivemind progress record, and answers check jobs from the tracker:

* stage (b), every report: the peer's own progress record for that epoch should support the
  samples claimed. The DHT is polled, so a record can be missed: a disagreement is suspicion, not
  proof, and sends the report to stage (c) whatever the draw said;
* stage (c), sampled or suspicious reports: rebuild a few claimed segments of micro-batches on the
  state the report started from and recompute their losses and gradient sketches. A report whose
  starting state the verifier never saw cannot be checked; that is "unverifiable", not a failure.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path

import hivemind
import torch

from potluck.errors import VerificationError
from potluck.node.hivemind_config import make_optimizer
from potluck.node.sketch import announced_states_key, state_digest
from potluck.node.tasks import get_task
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import PURPOSE_REPORT, open_envelope
from potluck.tracker.credit import Outcome, Verdict
from potluck.tracker.verifier.checkpoint_keeper import CheckpointKeeper
from potluck.tracker.verifier.messages import Job, Spread, VerifierReady, VerifierSpec
from potluck.tracker.verifier.progress_book import FLAGRANT_OVERCLAIM_FACTOR, ProgressBook
from potluck.tracker.verifier.recompute import SEGMENTS_PER_CHECK, compare, recompute
from potluck.tracker.verifier.spread import relative_spread
from potluck.tracker.verifier.state_fetcher import StateFetcher

logger = logging.getLogger(__name__)

# Model states kept (each a full copy of the model): the recent epochs' states, several an epoch when
# peers are out of step; a late report (from a node that was cut off) still finds its state.
MAX_SNAPSHOTS = 16
POLL_INTERVAL = 0.5  # seconds between turns of the loop, each of which reads the states peers announce
MAX_JOB_WAIT = 120.0  # seconds a job may wait for the state it needs
MAX_FETCHES_PER_PEER = 2  # announced states fetched from one peer per epoch (a download may re-announce)
LOAD_STATE_TIMEOUT = 15.0


def run_verifier(stop, events, spec: VerifierSpec, jobs) -> None:
    """Entry point of the verifier's `GroupProcess`; `jobs` is a queue of `Job`s from the tracker."""
    torch.set_num_threads(1)  # a verifier must not starve the swarm's volunteers of CPU
    run_id = spec.hivemind.run_id
    task = get_task(spec.task_name, spec.task_params, shards=spec.shards or None)
    follower, checker = task.build_model(), task.build_model()
    dht = hivemind.DHT(initial_peers=list(spec.hivemind.initial_peers), client_mode=True, start=True)
    # The nodes' own optimizer (a client that never steps): their averager class names the RPCs it
    # downloads states with.
    optimizer = make_optimizer(spec.hivemind, dht=dht, params=follower.parameters(),
                               payload_for_round=lambda: (0, b""), batch_size_per_step=1)
    keeper = CheckpointKeeper(Path(spec.checkpoint_dir) if spec.checkpoint_dir else None, spec.checkpoint_every,
                              spec.task_name, spec.task_params)
    snapshots: OrderedDict[bytes, tuple[int, dict]] = OrderedDict()
    snapshots[state_digest(follower)] = (0, _snapshot(follower))
    progress = ProgressBook()
    threading.Thread(target=progress.follow, args=(dht, run_id, stop), daemon=True, name="progress").start()
    pending: list[Job] = []
    fetcher = StateFetcher(dht, run_id)
    announcements = announced_states_key(run_id)
    epoch, asked = 0, Counter()  # asked: peer -> announced states requested this epoch
    parameter_names = [name for name, _ in follower.named_parameters()]
    compared = None  # the (epoch, announced digests) whose spread was last sent
    events.put(VerifierReady())
    try:
        while not stop.is_set():
            averager = optimizer.state_averager
            global_epoch = optimizer.tracker.global_progress.epoch
            if global_epoch > epoch:
                epoch, asked = global_epoch, Counter()
                if epoch > averager.local_epoch:  # once an epoch: the swarm's peers have better things to do
                    _load_swarm_state(averager, follower, snapshots, keeper)
            # Peers that missed part of a round start from states of their own: ask each for its own (a
            # window may last a second, so every turn). A peer a round behind our view is worth asking too.
            announced = _announced(dht, announcements)
            for peer_id, (peer_epoch, digest) in announced.items():
                if (epoch - 1 <= peer_epoch <= epoch and digest not in snapshots
                        and asked[peer_id] < MAX_FETCHES_PER_PEER):
                    asked[peer_id] += 1
                    _fetch_announced(fetcher, peer_id, digest, peer_epoch, checker, snapshots)
            # Measured only once every state announced for the epoch is held, all of them alike.
            digests = sorted(digest for peer_epoch, digest in announced.values() if peer_epoch == epoch)
            if len(digests) >= 2 and (epoch, digests) != compared and all(d in snapshots for d in digests):
                compared = (epoch, digests)
                relative = 0.0 if len(set(digests)) == 1 else relative_spread(
                    [[snapshots[d][1][name] for name in parameter_names] for d in digests])
                events.put(Spread(epoch, len(digests), relative))
            while len(snapshots) > MAX_SNAPSHOTS:
                snapshots.popitem(last=False)
            pending += _drain(jobs)
            still_pending = []
            for job in pending:
                verdict = _decide(job, spec, task, checker, snapshots, progress)
                if verdict is None:
                    still_pending.append(job)
                else:
                    events.put(verdict)
            pending = still_pending
            stop.wait(POLL_INTERVAL)
    finally:
        fetcher.close()
        optimizer.shutdown()
        dht.shutdown()


def _load_swarm_state(averager, follower, snapshots: OrderedDict, keeper: CheckpointKeeper) -> None:
    """The state of a peer hivemind picks among the furthest on; offered to the checkpoint keeper."""
    # One attempt, bounded (Optimizer.load_state_from_peers retries forever once peers are gone).
    try:
        averager.load_state_from_peers(timeout=LOAD_STATE_TIMEOUT)
    except Exception as e:  # a peer that leaves mid-download sends a truncated state
        logger.warning("could not load the swarm's state: %s", e)
        return
    digest = state_digest(follower)
    if digest not in snapshots:
        snapshots[digest] = (averager.local_epoch, _snapshot(follower))
    keeper.offer(averager.local_epoch, follower)


def _fetch_announced(fetcher, peer_id: str, digest: bytes, epoch: int, model, snapshots: OrderedDict) -> None:
    """The state `peer_id` announced it started `epoch` from, kept if what it serves has that digest."""
    params = list(model.parameters())
    try:
        tensors = fetcher.parameters(peer_id, len(params), LOAD_STATE_TIMEOUT)
        with torch.no_grad():
            for param, tensor in zip(params, tensors, strict=True):
                if tensor.shape != param.shape:
                    raise ValueError(f"a tensor of shape {tuple(tensor.shape)} for a parameter of {tuple(param.shape)}")
                param.copy_(tensor)
    except Exception as e:  # gone, slow, or garbage: its reports will be unverifiable, not failed
        logger.info("could not fetch the state peer %s announced for epoch %d: %s", peer_id, epoch, e)
        return
    if state_digest(model) != digest:  # it moved on meanwhile, or announced what it does not hold
        logger.info("peer %s serves another state than the one it announced for epoch %d", peer_id, epoch)
        return
    snapshots[digest] = (epoch, _snapshot(model))
    logger.debug("fetched the state peer %s announced for epoch %d", peer_id, epoch)


def _snapshot(model) -> dict:
    """A copy of the model's state that its further training does not touch."""
    return {k: v.clone() for k, v in model.state_dict().items()}


def _announced(dht, key: str) -> dict[str, tuple[int, bytes]]:
    """PeerID -> (epoch, digest of the state it announced it started that epoch from); self-reported, used
    only to look."""
    try:
        found = dht.get(key, latest=True)
    except Exception as e:  # the DHT shutting down under us: nothing to look for now
        logger.debug("could not read announced states: %s", e)
        return {}
    if found is None or not isinstance(found.value, dict):
        return {}
    announced = {}
    for peer_id, entry in found.value.items():
        value = getattr(entry, "value", None)
        if (isinstance(peer_id, str) and isinstance(value, list | tuple) and len(value) == 2
                and isinstance(value[0], int) and isinstance(value[1], bytes)):
            announced[peer_id] = (value[0], value[1])
    return announced


def _drain(jobs) -> list[Job]:
    found = []
    while True:
        try:
            found.append(jobs.get_nowait())
        except (queue.Empty, OSError, ValueError):
            return found


def _decide(job: Job, spec: VerifierSpec, task, checker, snapshots, progress: ProgressBook) -> Verdict | None:
    """A verdict for the job, or None while the state it needs may still arrive."""
    report = ContributionReport.FromString(open_envelope(job.envelope, purpose=PURPOSE_REPORT,
                                                         origin=spec.origin).payload)
    suspicion = progress.suspicion(report)
    if suspicion is None and not job.sampled:
        return Verdict(index=job.index, account_id=report.account_id, outcome=Outcome.PASSED, check="progress")
    snapshot = snapshots.get(report.state_digest)
    if snapshot is None:
        if time.monotonic() - job.queued_at < MAX_JOB_WAIT and report.epoch >= max(e for e, _ in snapshots.values()):
            return None  # the state for this epoch may not have been downloaded yet
        flagrant = progress.suspicion(report, factor=FLAGRANT_OVERCLAIM_FACTOR, slack=report.batch_size)
        if flagrant:
            # No state to recompute on, but the peer's own record contradicts it beyond any polling gap.
            return Verdict(index=job.index, account_id=report.account_id, outcome=Outcome.FAILED, check="progress",
                           reason=flagrant)
        return Verdict(index=job.index, account_id=report.account_id, outcome=Outcome.UNVERIFIABLE, check="recompute",
                       reason=f"no model state with digest {report.state_digest.hex()[:16]}… was seen"
                              + (f" (and it {suspicion})" if suspicion else ""))
    checker.load_state_dict(snapshot[1])
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
