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

import functools
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

from potluck.errors import VerificationError
from potluck.proto.report_pb2 import ContributionReport
from potluck.proto.signing import PURPOSE_REPORT, open_envelope
from potluck.tracker.checkpoint_keeper import CheckpointKeeper

logger = logging.getLogger(__name__)

# Model states kept (each a full copy of the model): the recent epochs' states, several an epoch when
# peers are out of step; a late report (from a node that was cut off) still finds its state.
MAX_SNAPSHOTS = 16
POLL_INTERVAL = 0.5  # seconds between turns of the loop, each of which reads the states peers announce
MAX_JOB_WAIT = 120.0  # seconds a job may wait for the state it needs
MAX_FETCHES_PER_PEER = 2  # announced states fetched from one peer per epoch (a download may re-announce)
LOAD_STATE_TIMEOUT = 15.0
# Stage (b): claims beyond this multiple of the peer's own record are recomputed on every drawn segment
# (an honest peer's record lags its last steps, so it may be suspected, and then passes). A tripled
# window of one micro-batch is 3x its record.
OVERCLAIM_FACTOR = 2.0
# Without a state to recompute on, only a claim this far above the peer's own record fails: an honest
# peer would have to publish 60% of its epoch's progress between two of our polls for us to miss it.
FLAGRANT_OVERCLAIM_FACTOR = 2.5  # stage (b): claims beyond this multiple of the peer's own record fail


@dataclass(frozen=True, kw_only=True)
class VerifierSpec:
    origin: str
    run_id: str
    initial_peers: tuple[str, ...]
    data_seed: bytes
    task_name: str
    task_params: dict
    shards: tuple[tuple[str, bytes], ...]
    target_batch_size: int
    learning_rate: float
    matchmaking_time: float
    averaging_timeout: float
    checkpoint_dir: str | None = None  # the checkpoint keeper saves the swarm's model here...
    checkpoint_every: int = 5  # ... every this many epochs


@dataclass(frozen=True)
class Job:
    index: int  # ledger index of the grant
    envelope: bytes  # the report, as signed
    segments: tuple[int, ...]  # segments the tracker drew for recomputation, most telling first
    sampled: bool  # drawn for stage (c); otherwise stage (b) only, unless it raises suspicion
    queued_at: float


def run_verifier(stop, events, spec: VerifierSpec, jobs) -> None:
    """Entry point of the verifier's `GroupProcess`; `jobs` is a queue of `Job`s from the tracker."""
    import hivemind
    import torch

    from potluck.node.sketch import announced_states_key, state_digest
    from potluck.node.tasks import get_task
    from potluck.node.worker_attest import AttestingGradientAverager
    from potluck.tracker.state_fetch import StateFetcher

    torch.set_num_threads(1)  # a verifier must not starve the swarm's volunteers of CPU
    request_timeout = min(3.0, spec.matchmaking_time / 2)
    task = get_task(spec.task_name, spec.task_params, shards=spec.shards or None)
    follower, checker = task.build_model(), task.build_model()
    dht = hivemind.DHT(initial_peers=list(spec.initial_peers), client_mode=True, start=True)
    optimizer = hivemind.Optimizer(
        dht=dht, run_id=spec.run_id, target_batch_size=spec.target_batch_size, batch_size_per_step=1,
        params=follower.parameters(), optimizer=functools.partial(torch.optim.Adam, lr=spec.learning_rate),
        matchmaking_time=spec.matchmaking_time, averaging_timeout=spec.averaging_timeout, client_mode=True,
        use_local_updates=False, delay_state_averaging=False,
        # The nodes' averager class names their RPCs; the same class lets us download state from them.
        grad_averager_factory=functools.partial(AttestingGradientAverager, payload_for_round=lambda: (0, b""),
                                                request_timeout=request_timeout),
        averager_opts=dict(request_timeout=request_timeout))
    keeper = CheckpointKeeper(Path(spec.checkpoint_dir) if spec.checkpoint_dir else None, spec.checkpoint_every,
                              spec.task_name, spec.task_params)
    snapshots: OrderedDict[bytes, tuple[int, dict]] = OrderedDict()
    snapshots[state_digest(follower)] = (0, _snapshot(follower))
    progress = ProgressBook()
    threading.Thread(target=progress.follow, args=(dht, spec.run_id, stop), daemon=True, name="progress").start()
    pending: list[Job] = []
    fetcher = StateFetcher(dht, spec.run_id)
    announcements = announced_states_key(spec.run_id)
    epoch, asked = 0, Counter()  # asked: peer -> announced states requested this epoch
    parameter_names = [name for name, _ in follower.named_parameters()]
    compared = None  # the (epoch, announced digests) whose spread was last sent
    events.put(("ready", None))
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
                events.put(("spread", (epoch, len(digests), relative)))
            while len(snapshots) > MAX_SNAPSHOTS:
                snapshots.popitem(last=False)
            pending += _drain(jobs)
            still_pending = []
            for job in pending:
                verdict = _decide(job, spec, task, checker, snapshots, progress)
                if verdict is None:
                    still_pending.append(job)
                else:
                    events.put(("verdict", verdict))
            pending = still_pending
            stop.wait(POLL_INTERVAL)
    finally:
        fetcher.close()
        optimizer.shutdown()
        dht.shutdown()


def _load_swarm_state(averager, follower, snapshots: OrderedDict, keeper: CheckpointKeeper) -> None:
    """The state of a peer hivemind picks among the furthest on; offered to the checkpoint keeper."""
    from potluck.node.sketch import state_digest

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
    import torch

    from potluck.node.sketch import state_digest

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


def relative_spread(states: list[list]) -> float:
    """The largest L2 distance of one state (a list of tensors) from the states' mean, relative to the
    mean's norm; one tensor at a time, so that it takes memory for one tensor of each state, not a model."""
    import torch

    squared = torch.zeros(len(states), dtype=torch.float64)  # each state's squared distance from the mean
    mean_squared = torch.zeros((), dtype=torch.float64)
    for tensors in zip(*states, strict=True):
        if all(t is tensors[0] for t in tensors):  # states that share this tensor (the same snapshot)
            mean_squared += tensors[0].detach().double().square().sum()
            continue
        stacked = torch.stack([t.detach().double() for t in tensors])
        mean = stacked.mean(dim=0)
        squared += (stacked - mean).square().flatten(1).sum(dim=1)
        mean_squared += mean.square().sum()
    return float(squared.max().sqrt() / mean_squared.sqrt().clamp_min(1e-30))


def _snapshot(model) -> dict:
    """A copy of the model's state that its further training does not touch."""
    return {k: v.clone() for k, v in model.state_dict().items()}


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


def _decide(job: Job, spec: VerifierSpec, task, checker, snapshots, progress: ProgressBook) -> dict | None:
    """A verdict for the job, or None while the state it needs may still arrive."""
    from potluck.tracker.recompute import SEGMENTS_PER_CHECK, compare, recompute

    report = ContributionReport.FromString(open_envelope(job.envelope, purpose=PURPOSE_REPORT,
                                                         origin=spec.origin).payload)
    verdict = {"index": job.index, "account_id": report.account_id, "passed": True, "check": "progress",
               "reason": "", "cpu_seconds": 0.0, "recomputed": False}
    suspicion = progress.suspicion(report)
    if suspicion is None and not job.sampled:
        return verdict
    snapshot = snapshots.get(report.state_digest)
    if snapshot is None:
        if time.monotonic() - job.queued_at < MAX_JOB_WAIT and report.epoch >= max(e for e, _ in snapshots.values()):
            return None  # the state for this epoch may not have been downloaded yet
        flagrant = progress.suspicion(report, factor=FLAGRANT_OVERCLAIM_FACTOR, slack=report.batch_size)
        if flagrant:
            # No state to recompute on, but the peer's own record contradicts it beyond any polling gap.
            return verdict | {"passed": False, "reason": flagrant}
        return verdict | {"passed": None, "check": "recompute",
                          "reason": f"no model state with digest {report.state_digest.hex()[:16]}… was seen"
                                    + (f" (and it {suspicion})" if suspicion else "")}
    checker.load_state_dict(snapshot[1])
    started = time.process_time()
    try:
        # A suspicious claim gets all the drawn segments: a padded window hides few real ones.
        segments = list(job.segments) if suspicion else list(job.segments[:SEGMENTS_PER_CHECK])
        compare(report, recompute(task, checker, report, spec.data_seed, segments))
        passed, reason = True, ""
    except VerificationError as e:
        passed, reason = False, str(e) + (f"; and it {suspicion}" if suspicion else "")
    return verdict | {"passed": passed, "check": "recompute", "reason": reason, "recomputed": True,
                      "cpu_seconds": time.process_time() - started}
