"""What `potluck node join` costs over a bare hivemind.Optimizer loop, printed as one JSON object.

All sides train the `synthetic` task as the only peer of a run (so every averaging round is skipped
at once: what is left is our code), on the same bootstrap DHT, with the same batch size, target batch
size and hivemind settings, in fresh processes with the same thread count:

* node: the real `potluck node join --max-epochs N` subprocess, against a real tracker (in this
  process, verifier off: it runs on the lead's machine) with a fresh run id each time. Its windows
  are read back from the signed reports in its outbox (state_dir/outbox.sqlite).
* bare: this script again (`--bare-worker`), a plain loop of make_batch, forward, backward,
  `optimizer.step()` on a `hivemind.Optimizer`, timing windows exactly as the node's worker does.
* worker: potluck's TrainingWorker alone, in a plain process (no supervisor, outbox or reporter), to
  tell the training loop's cost (gradient sketches, window bookkeeping) from the daemon's.

Throughput is sum(num_samples) / sum(wall_time) over windows, the first window of each run left out
(start-up). `span` is the same samples over first-start to last-end, so costs between windows (the
node's state digest, its window events) count too. Runs alternate the order of the sides; best-of
and median are reported, with their ratios (target: node/bare >= 0.97), and each round's own
node/bare ratio (its runs shared the machine's load of the moment; the load average says how much
to trust any of it), whose median is the headline `ratio`. `supervisor_cores_while_training` is
the CPU the node's supervisor process takes meanwhile, sampled from /proc: free of that noise.

Both sides run with OMP_NUM_THREADS=--threads (default 1): on a shared 2-core machine, two OpenMP
threads spin against the neighbours and the noise swamps the figure.

`--task lm` measures the same on task `lm` instead (default: `synthetic`, as above): `potluck data prepare`
on `--corpus` (default tests/tracker/corpus_es, the e2e test's Spanish text; vocabulary 300) and the e2e
test's model (vocab 300, hidden 64, 2 layers, 4 heads, seq_len 32); the manifest names the shards (its
datasets.toml) and the tracker serves them, so the node downloads and checks them as a volunteer does (before
its first window); the bare loop and the worker build the task from the same training shard. Its defaults
are smaller, to finish in under 7 minutes on 2 cores (measured 6.6): batch 16, 400 steps per epoch (6400
samples, about 7 s a window on one core), 4 timed windows, 3 rounds. benchmarks/swarm_quality.py points here
for this figure.

Run: .venv/bin/python benchmarks/node_overhead.py [--rounds 4] [--epochs 6] [--steps-per-epoch 2048]
     .venv/bin/python benchmarks/node_overhead.py --task lm [--rounds 3] [--epochs 4] [--steps-per-epoch 400]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGET_RATIO = 0.97
RUN_TIMEOUT = 150.0
POTLUCK = Path(sys.executable).parent / "potluck"
# The swarm template's hivemind settings, for both sides; the bare optimizer is built as the worker builds its
# own (TrainingWorker._make_optimizer), less our attesting gradient averager.
HIVEMIND = dict(learning_rate=0.01, matchmaking_time=3.0, averaging_timeout=30.0)
# Per task: the defaults of --batch-size, --steps-per-epoch, --epochs and --rounds.
DEFAULTS = {"synthetic": dict(batch_size=32, steps_per_epoch=2048, epochs=6, rounds=4),
            "lm": dict(batch_size=16, steps_per_epoch=400, epochs=4, rounds=3)}
LM_VOCAB = 300
LM_PARAMS = f"vocab_size = {LM_VOCAB}\nhidden_size = 64\nnum_layers = 2\nnum_heads = 4\nseq_len = 32"
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "tracker" / "corpus_es"


def load_task(spec: dict):
    """The spec's task: `synthetic` as is, or `lm` with its parameters and training shards (sha256, path)."""
    from potluck.node.tasks import get_task

    if spec.get("task", "synthetic") == "synthetic":
        return get_task("synthetic")
    return get_task(spec["task"], spec["task_params"],
                    shards=[(sha, Path(path).read_bytes()) for sha, path in spec["shards"]])


# ---------------------------------------------------------------- the bare side


def bare_worker(spec: dict) -> None:
    """A plain hivemind.Optimizer loop, windows timed as potluck's TrainingWorker times them."""
    import hivemind
    import torch
    from hivemind.optim import Optimizer

    task = load_task(spec)
    dht = hivemind.DHT(initial_peers=spec["initial_peers"], host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True)
    model = task.build_model()
    request_timeout = min(3.0, spec["matchmaking_time"] / 2)
    optimizer = Optimizer(
        dht=dht, run_id=spec["run_id"], target_batch_size=spec["target_batch_size"],
        batch_size_per_step=spec["batch_size"], params=model.parameters(),
        optimizer=functools.partial(torch.optim.Adam, lr=spec["learning_rate"]),
        matchmaking_time=spec["matchmaking_time"], averaging_timeout=spec["averaging_timeout"],
        use_local_updates=False, delay_state_averaging=False, average_state_every=1,
        averager_opts=dict(request_timeout=request_timeout), client_mode=False)
    seed, account = bytes.fromhex(spec["data_seed"]), "b0" * 32
    try:
        windows = []
        epoch, steps = optimizer.local_epoch, 0
        started_at, started = time.time(), time.perf_counter()
        while len(windows) < spec["epochs"]:
            batch = task.make_batch(seed, account, epoch, steps, spec["batch_size"])
            optimizer.zero_grad()
            loss = task.loss(model, batch)
            loss.backward()
            steps += 1
            optimizer.step()
            if optimizer.local_epoch != epoch:
                windows.append(dict(epoch=epoch, num_samples=steps * spec["batch_size"], started_at=started_at,
                                    wall_time=time.perf_counter() - started))
                epoch, steps = optimizer.local_epoch, 0
                started_at, started = time.time(), time.perf_counter()
        print(json.dumps(windows), flush=True)
    finally:
        optimizer.shutdown()
        dht.shutdown()


def worker_only(spec: dict) -> None:
    """potluck's TrainingWorker, as the node's worker process runs it, less the supervisor around it."""
    from potluck.node.hivemind_config import HivemindConfig
    from potluck.node.training import TrainingConfig, TrainingWorker

    hivemind = HivemindConfig(run_id=spec["run_id"], initial_peers=tuple(spec["initial_peers"]),
                              target_batch_size=spec["target_batch_size"], learning_rate=spec["learning_rate"],
                              matchmaking_time=spec["matchmaking_time"], averaging_timeout=spec["averaging_timeout"],
                              compression="none")
    config = TrainingConfig(hivemind=hivemind, data_seed=bytes.fromhex(spec["data_seed"]), account_id="b0" * 32,
                            batch_size_per_step=spec["batch_size"])
    windows = []
    worker = TrainingWorker(config, load_task(spec), on_window=lambda stats: windows.append(dict(
        epoch=stats.epoch, num_samples=stats.samples, started_at=stats.started_at, wall_time=stats.wall_time)))
    worker.run(max_windows=spec["epochs"])
    print(json.dumps(windows), flush=True)


def run_bare(spec: dict, env: dict) -> list[dict]:
    proc = subprocess.Popen([sys.executable, __file__, "--bare-worker", json.dumps(spec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    stdout, stderr = _finish(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"bare worker exited with {proc.returncode}: {stderr[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the node side


class _Loop:
    """An asyncio loop on a thread of its own, for the trackers.

    Trackers are stopped together at the end: grpc.aio tears its poller down when its last server
    goes, and the loop then trips over the closed descriptor (an `OSError` printed, nothing lost).
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.trackers = []

    def call(self, coroutine, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        for tracker in self.trackers:
            self.call(tracker.stop(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def swarm_text(task: str, data_dir: Path | None) -> str:
    """The swarm template's swarm.toml, for `lm` with the e2e test's model and `data prepare`'s datasets."""
    from potluck.tracker.swarm.swarm_config import render_swarm_template

    text = render_swarm_template("bench")
    if task == "synthetic":
        return text
    for old, new in {'name = "synthetic"': 'name = "lm"',
                     "# Task parameters; anything left out takes the task's default.": LM_PARAMS}.items():
        if old not in text:
            raise AssertionError(f"swarm template changed: {old!r} not found")
        text = text.replace(old, new, 1)
    return text + "\n" + (data_dir / "datasets.toml").read_text()


def prepare_lm_data(work: Path, corpus: Path, env: dict) -> tuple[Path, dict, list[list[str]]]:
    """`potluck data prepare` on `corpus`: the data folder, the task's parameters, its training shards."""
    from potluck.manifest import param_dict, training_shards
    from potluck.tracker.swarm.swarm_config import parse_swarm_config

    data = work / "data"
    subprocess.run([str(POTLUCK), "data", "prepare", str(corpus), "-o", str(data), "--name", "corpus", "--license",
                    "LicenseRef-public-domain", "--owner", "Biblioteca", "--vocab-size", str(LM_VOCAB),
                    "--eval-share", "0.15"],  # as benchmarks/swarm_quality.py: the same training shard
                   env=env, check=True, capture_output=True, timeout=300)
    manifest = parse_swarm_config(swarm_text("lm", data))
    trained_on = training_shards(manifest)
    shards = [[d.sha256, str(data / d.name)] for d in manifest.datasets if d.sha256 in trained_on]
    return data, param_dict(manifest.task), shards


def signed_manifest(lead, *, run_id: str, initial_peers: list[str], target_batch_size: int, task: str = "synthetic",
                    data_dir: Path | None = None):
    from potluck.manifest import sign_manifest, verify_manifest
    from potluck.tracker.swarm.swarm_config import parse_swarm_config

    manifest = parse_swarm_config(swarm_text(task, data_dir))
    manifest.hivemind.run_id = run_id
    manifest.hivemind.target_batch_size = target_batch_size
    for key, value in HIVEMIND.items():
        setattr(manifest.hivemind, key, value)
    manifest.bootstrap_peers.extend(initial_peers)
    return verify_manifest(sign_manifest(manifest, lead))


def run_node(work: Path, index: int, lead, loop: _Loop, spec: dict, env: dict) -> list[dict]:
    from potluck.proto.report_pb2 import ContributionReport
    from potluck.signing import PURPOSE_REPORT, open_envelope
    from potluck.tracker.tracker import Tracker, TrackerConfig

    data_dir = Path(spec["data_dir"]) if spec.get("data_dir") else None
    manifest = signed_manifest(lead, run_id=spec["run_id"], initial_peers=spec["initial_peers"],
                               target_batch_size=spec["target_batch_size"], task=spec.get("task", "synthetic"),
                               data_dir=data_dir)
    state = work / f"tracker-{index}"
    tracker = loop.call(Tracker.start(manifest, TrackerConfig(
        state_dir=state, db=str(state / "ledger.sqlite"), listen="127.0.0.1:0", verify=False,
        # The shards it serves, by sha256: `data prepare` named each file as datasets.toml does.
        shards={d.sha256: data_dir / d.name for d in manifest.manifest.datasets} if data_dir else {})))
    loop.trackers.append(tracker)
    node_dir = work / f"node-{index}"
    samples: list[tuple[float, float]] = []  # (wall clock, the supervisor's CPU seconds so far)
    proc = subprocess.Popen(
        [str(POTLUCK), "node", "join", "--tracker", f"127.0.0.1:{tracker.port}", "--lead-key",
         lead.public_key.hex(), "--state-dir", str(node_dir), "--device", "cpu",
         "--batch-size", str(spec["batch_size"]), "--max-epochs", str(spec["epochs"]),
         "--host-maddr", "/ip4/127.0.0.1/tcp/0", "--json-logs"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    sampler = threading.Thread(target=_sample_cpu, args=(proc, samples), daemon=True)
    sampler.start()
    _, stderr = _finish(proc)
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"potluck node join exited with {proc.returncode}: {stderr[-2000:]}")
    with contextlib.closing(sqlite3.connect(f"file:{node_dir / 'outbox.sqlite'}?mode=ro", uri=True)) as db:
        envelopes = [row[0] for row in db.execute("SELECT envelope FROM reports ORDER BY sequence")]
    windows = []
    for envelope in envelopes:
        opened = open_envelope(envelope, purpose=PURPOSE_REPORT, origin=manifest.origin)
        report = ContributionReport.FromString(opened.payload)
        windows.append(dict(epoch=report.epoch, num_samples=report.num_samples, started_at=report.started_at,
                            wall_time=report.wall_time))
    start, end = windows[1]["started_at"], windows[-1]["started_at"] + windows[-1]["wall_time"]
    before = max((sample for sample in samples if sample[0] <= start), default=None)
    after = min((sample for sample in samples if sample[0] >= end), default=None)
    if before and after:  # the supervisor's share of a core while the timed windows ran
        windows[0]["supervisor_cores"] = (after[1] - before[1]) / (after[0] - before[0])
    return windows


def _sample_cpu(proc: subprocess.Popen, samples: list[tuple[float, float]]) -> None:
    """Every 0.2 s until it exits: the CPU time of `proc` itself (its children, the worker, not counted)."""
    ticks = os.sysconf("SC_CLK_TCK")
    while proc.poll() is None:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        samples.append((time.time(), (int(fields[11]) + int(fields[12])) / ticks))
        time.sleep(0.2)


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    """Wait for a subprocess we started in a session of its own; kill what is left of its group."""
    try:
        return proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise RuntimeError(f"{proc.args[:3]} ran past {RUN_TIMEOUT:.0f}s: {stderr[-2000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # hivemind's DHT and p2pd, should any outlive their parent


# ---------------------------------------------------------------- figures


def throughput(windows: list[dict], expected: int) -> dict:
    if len(windows) != expected:
        raise RuntimeError(f"expected {expected} windows, got {len(windows)}: {windows}")
    timed = windows[1:]  # the first window pays for start-up (first progress fetch, allocator warm-up)
    samples = sum(w["num_samples"] for w in timed)
    span = timed[-1]["started_at"] + timed[-1]["wall_time"] - timed[0]["started_at"]
    return dict(samples_per_s=samples / sum(w["wall_time"] for w in timed), span_samples_per_s=samples / span,
                samples=samples, supervisor_cores=windows[0].get("supervisor_cores"))


def summary(runs: list[dict]) -> dict:
    rates = [r["samples_per_s"] for r in runs]
    spans = [r["span_samples_per_s"] for r in runs]
    return dict(best=max(rates), median=statistics.median(rates), runs=[round(r, 1) for r in rates],
                span_best=max(spans), span_median=statistics.median(spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(DEFAULTS), default="synthetic", help="the task all sides train")
    parser.add_argument("--rounds", type=int, help="runs of each side, interleaved (default: synthetic 4, lm 3)")
    parser.add_argument("--epochs", type=int, help="timed windows per run (one more is run and dropped; default: "
                                                   "synthetic 6, lm 4)")
    parser.add_argument("--batch-size", type=int, help="default: synthetic 32, lm 16")
    # synthetic: the swarm template's target batch (65536) at batch 32: one peer's window, as a lone volunteer sees it.
    parser.add_argument("--steps-per-epoch", type=int, help="default: synthetic 2048, lm 400")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides (OMP_NUM_THREADS)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="--task lm: the text `data prepare` reads")
    parser.add_argument("--bare-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        spec = json.loads(args.bare_worker)
        worker_only(spec) if spec.get("worker_only") else bare_worker(spec)
        return
    for key, value in DEFAULTS[args.task].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    from potluck.identity import AccountKey
    from potluck.tracker.swarm import start_bootstrap_peer
    from potluck.tracker.swarm.bootstrap_peer import BOOTSTRAP_STOP_TIMEOUT

    started, load_before = time.monotonic(), os.getloadavg()[0]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "POTLUCK_LOGLEVEL": "WARNING"}
    env.pop("POTLUCK_DEBUG", None)
    base = dict(batch_size=args.batch_size, target_batch_size=args.batch_size * args.steps_per_epoch,
                epochs=args.epochs + 1, data_seed=os.urandom(32).hex(), **HIVEMIND)
    lead = AccountKey.generate()
    results: dict[str, list[dict]] = {"node": [], "worker": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="potluck-bench-") as tmp:
        work = Path(tmp)
        env["POTLUCK_HOME"] = str(work / "home")
        subprocess.run([str(POTLUCK), "identity", "create"], env=env, check=True, capture_output=True)
        lm = {}
        if args.task == "lm":
            data_dir, task_params, shards = prepare_lm_data(work, args.corpus, env)
            lm = dict(task="lm", task_params=task_params, shards=shards, data_dir=str(data_dir))
        # Fork the bootstrap peer before the tracker's gRPC threads exist.
        bootstrap, ready = start_bootstrap_peer(work, "127.0.0.1", 0)
        initial_peers = ready.maddrs
        loop = _Loop()
        try:
            for index in range(args.rounds):
                order = ("node", "worker", "bare")
                for side in order if index % 2 == 0 else reversed(order):
                    spec = dict(base, run_id=f"bench_{side}_{index}_{os.urandom(4).hex()}",
                                initial_peers=initial_peers, **lm)
                    if side == "node":
                        windows = run_node(work, index, lead, loop, spec, env)
                    else:
                        windows = run_bare(dict(spec, worker_only=side == "worker"), env)
                    results[side].append(throughput(windows, spec["epochs"]))
        finally:
            loop.close()
            bootstrap.stop(BOOTSTRAP_STOP_TIMEOUT)
    node, worker, bare = (summary(results[side]) for side in ("node", "worker", "bare"))
    # Runs of one round are minutes apart at most, so they share the machine's load: compare them pairwise too.
    paired = [n["samples_per_s"] / b["samples_per_s"] for n, b in zip(results["node"], results["bare"], strict=True)]
    figures = {
        "task": args.task,
        **({"task_params": lm["task_params"], "corpus": str(args.corpus)} if lm else {}),
        "batch_size": args.batch_size,
        "target_batch_size": base["target_batch_size"],
        "timed_windows_per_run": args.epochs,
        "rounds": args.rounds,
        "torch_threads": args.threads,
        "node_samples_per_s": node,
        "bare_samples_per_s": bare,
        "worker_samples_per_s": worker,
        # The headline: each round's node/bare ratio (its runs shared the load of the moment), median over rounds.
        "ratio": statistics.median(paired),
        "meets_target": statistics.median(paired) >= TARGET_RATIO,
        "ratio_best": node["best"] / bare["best"],
        "ratio_median": node["median"] / bare["median"],
        "paired_ratios": [round(r, 3) for r in paired],
        "paired_ratio_median": statistics.median(paired),
        "span_ratio_best": node["span_best"] / bare["span_best"],
        "span_ratio_median": node["span_median"] / bare["span_median"],
        "target_ratio": TARGET_RATIO,
        # Attribution: the training loop alone (worker) against the bare loop, and the daemon around it.
        "worker_ratio_median": worker["median"] / bare["median"],
        "node_to_worker_ratio_median": node["median"] / worker["median"],
        # CPU the node's supervisor (manifest, outbox, reporter, status line) takes while the worker trains, in
        # cores: what it takes from the training on a machine with no core to spare.
        "supervisor_cores_while_training": [round(r["supervisor_cores"], 4) for r in results["node"]
                                            if r["supervisor_cores"] is not None],
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "total_s": time.monotonic() - started,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
