"""Does a swarm of three volunteers train task `lm` as well as one volunteer alone, and how fast? One JSON object.

Both sides are real swarms on 127.0.0.1 (tracker/swarm/local_swarm.py: `potluck swarm start` with its verifier,
`--data-dir` and `--checkpoint-every 1`, then `potluck node join --max-epochs N --batch-size B` per volunteer),
started from the very same swarm.toml text (the same seed, initial model, hivemind settings, target batch size,
Adam learning rate and data shards):

* swarm: three volunteers join it;
* alone: one volunteer joins it, and trains alone. This is the like-for-like baseline rather than a plain
  torch loop: the same `node join` code, the same hivemind.Optimizer built from the same swarm.toml (Adam at
  its `learning_rate`, one optimizer step per `target_batch_size` samples accumulated), the same data recipe;
  only the number of peers differs (alone, hivemind skips its averaging rounds at once). So one epoch is one
  step on the same global batch on both sides, and N epochs are the same number of samples.

Data: `potluck data prepare` on `--corpus` (default tests/tracker/corpus_es, the e2e test's public-domain
Spanish text, about 1,700 training and 300 held-out tokens), vocabulary 300, 15% held out; the model is the
e2e test's (vocab 300, hidden 64, 2 layers, 4 heads, seq_len 32: 170k parameters). swarm.toml is
local_swarm_config's (every report recomputed) with task `lm` and target_batch_size = 3 x `--batch` x
`--steps-per-epoch`: one epoch of the swarm is `--steps-per-epoch` micro-batches per volunteer, and of the
volunteer alone three times as many.

1. Quality. The verifier saves the state it loads from the swarm's peers, once an epoch, to its state dir
   (checkpoints/model-epoch-E.safetensors: the model after E optimizer steps). Each side's checkpoints are read
   back and evaluated here, the same way for both: the tracker's own held-out loss (tracker/verifier/held_out.py's
   HeldOut, built from the eval shard and the swarm's seed: the same 64 windows for every state) and, less noisy,
   the mean loss over every window of the eval shard (each offset, seq_len + 1 tokens). The volunteers stop
   averaging right after their last round, so the verifier usually cannot load the state after the last epoch:
   the figures compare both sides at the newest epoch E that both have a checkpoint of ("final"), and give the
   whole curve (every epoch either side has). `samples_to_final` is what the reports say each side trained
   before epoch E (hivemind overshoots the target a little, more so with several peers). The headline
   `quality.ratio` is swarm / alone held-out loss at E (target <= 1.05; below 1 is better than alone); the
   tracker's own last measurement (`swarm status --json`, every 2 epochs) is shown too.

2. Scaling efficiency. From the signed reports in each volunteer's outbox (node/<name>/node/outbox.sqlite, opened
   and their signatures checked as node_overhead.py does): a volunteer's samples/s is sum(num_samples) /
   sum(wall_time) over its windows, its first and last windows left out: the first pays for start-up (and a
   volunteer that joins a moment late closes epoch 0 after a few micro-batches), and the last for the swarm's
   end (a volunteer that misses the others' last round waits out a round nobody else joins, since they have
   left: 64 s against its groupmates' 10 s in a trial run). A round missed mid-run costs as much (64 s against
   28 s with the defaults) and is counted. `efficiency_with_last_window` keeps the last window. A window ends
   with the averaging round that closes the epoch, so its wall time includes the round. The swarm's rate is the
   sum of its three volunteers'; efficiency = swarm / (3 x alone), the same windows left out on both sides. `span_*`
   counts the same samples over first start to last end, so time lost between windows (a state download, say)
   counts too. `windows` lists every report: [epoch, num_samples, wall_time, averaged]. Every volunteer
   runs with OMP_NUM_THREADS=`--threads` (default 1), alone too: on a 2-core machine three volunteers share 2
   cores (and the lead's verifier, which recomputes every report here, takes its share: `lead_cores` is the CPU
   the whole `swarm start` tree took while the volunteers trained), so efficiency there is bounded by about 2/3
   whatever the averaging costs; it measures the protocol only on a machine with a core per volunteer.
   The sides run one after the other (the alone side first in even rounds), so their load may differ: the load
   average is printed.

3. node join's own overhead on `lm` (the node against a bare hivemind.Optimizer loop, target >= 0.97) is
   `benchmarks/node_overhead.py --task lm`; `--with-overhead` runs it after the rounds and includes its JSON
   (it takes about as long again).

Every process is started in a session of its own and stopped (LocalSwarm.stop, SIGTERM then SIGKILL); at the end
`leftover_processes` lists any process still below this one or in one of those sessions (it should be empty).
Every wait is bounded (`--timeout` per swarm for the volunteers, LocalSwarm's own for the rest).

Run: .venv/bin/python benchmarks/swarm_quality.py [--epochs 6] [--batch 16] [--steps-per-epoch 500] [--rounds 1]
     [--timeout 480] [--threads 1] [--corpus DIR] [--keep DIR] [--with-overhead]
(about 7 minutes with the defaults on 2 cores: measured 7.2, the machine shared).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from proctree import descendant_pids, stat_fields  # noqa: E402  (the tests' process-tree helpers)

from potluck.tracker.swarm.local_swarm import TASK_PARAMS, LocalSwarm, local_swarm_config  # noqa: E402

TARGET_RATIO = 1.05
VOLUNTEERS = ("v1", "v2", "v3")
VOCAB = 300
LM_PARAMS = dict(vocab_size=VOCAB, hidden_size=64, num_layers=2, num_heads=4, seq_len=32)
CLK_TCK = os.sysconf("SC_CLK_TCK")
OVERHEAD_TIMEOUT = 900.0


# ---------------------------------------------------------------- the swarm.toml both sides share


def prepare_data(work: Path, corpus: Path) -> Path:
    data = work / "data"
    done = LocalSwarm(work, num_nodes=1).run_cli(  # for its CLI runner only
        "data", "prepare", str(corpus), "-o", str(data), "--name", "corpus", "--license", "LicenseRef-public-domain",
        "--owner", "Biblioteca", "--vocab-size", str(VOCAB), "--eval-share", "0.15", home=work / "lead", timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"potluck data prepare failed: {done.stderr[-2000:]}")
    return data


def swarm_toml(data: Path, *, batch: int, steps_per_epoch: int) -> str:
    text = local_swarm_config("quality", num_nodes=len(VOLUNTEERS), batch_size=batch)
    text = text.replace('name = "synthetic"', 'name = "lm"', 1)
    text = text.replace(TASK_PARAMS, "\n".join(f"{k} = {v}" for k, v in LM_PARAMS.items()))
    text, found = re.subn(r"(?m)^target_batch_size = \d+",
                          f"target_batch_size = {len(VOLUNTEERS) * batch * steps_per_epoch}", text)
    if found != 1:
        raise AssertionError("local_swarm_config changed: no target_batch_size line")
    return text + "\n" + (data / "datasets.toml").read_text()


# ---------------------------------------------------------------- one side: a swarm and its volunteers


def cpu_seconds(root: int) -> float:
    """user+sys of `root` and every living process below it (and of their children already reaped)."""
    total = 0
    for pid in [root, *descendant_pids(root)]:
        fields = stat_fields(pid)
        if fields is not None:  # fields[0] is the state (stat's field 3): utime..cstime are fields 14..17
            total += sum(int(f) for f in fields[11:15])
    return total / CLK_TCK


def read_reports(outbox: Path, origin: str) -> list[dict]:
    """The signed reports in a node's outbox, signatures checked, in sequence order."""
    from potluck.proto.report_pb2 import ContributionReport
    from potluck.signing import PURPOSE_REPORT, open_envelope

    with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
        envelopes = [row[0] for row in db.execute("SELECT envelope FROM reports ORDER BY sequence")]
    reports = []
    for envelope in envelopes:
        report = ContributionReport.FromString(
            open_envelope(envelope, purpose=PURPOSE_REPORT, origin=origin).payload)
        reports.append(dict(epoch=report.epoch, num_samples=report.num_samples, started_at=report.started_at,
                            wall_time=report.wall_time, averaged=report.averaging.succeeded,
                            failure=report.averaging.failure))
    return reports


def run_side(workdir: Path, config: str, data: Path, names: tuple[str, ...], args, sessions: set[int]) -> dict:
    """A swarm from `config`, volunteers `names` each training --epochs windows; what it left behind."""
    from potluck.node.checkpoint_file import read_checkpoint
    from potluck.tracker.swarm.swarm_config import parse_swarm_config

    swarm = LocalSwarm(workdir, config_text=config, num_nodes=len(names),
                       swarm_args=("--data-dir", str(data), "--checkpoint-every", "1"))
    swarm.node_threads = str(args.threads)  # alone as in the swarm: one volunteer's share, the same for both
    started = time.monotonic()
    try:
        swarm.start()
        sessions.add(swarm.swarm.popen.pid)
        lead_cpu, joined = cpu_seconds(swarm.swarm.popen.pid), time.monotonic()
        for name in names:
            sessions.add(swarm.start_node(name, max_epochs=args.epochs,
                                          extra=("--batch-size", str(args.batch))).popen.pid)
        try:
            codes = swarm.wait_nodes(args.timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the volunteers ran past --timeout {args.timeout:.0f}s (see {workdir})") from None
        trained_s = time.monotonic() - joined
        lead_cores = (cpu_seconds(swarm.swarm.popen.pid) - lead_cpu) / trained_s
        status = swarm.run_cli("swarm", "status", "--state-dir", str(swarm.state_dir), "--json",
                               home=workdir / "lead")
        status = json.loads(status.stdout) if status.returncode == 0 else {"error": status.stderr[-500:]}
    finally:
        swarm.stop()
    if any(codes.values()):
        tails = {n: (workdir / f"{n}.log").read_text(errors="replace")[-1500:] for n, c in codes.items() if c}
        raise RuntimeError(f"volunteers exited {codes}: {tails}")
    origin = parse_swarm_config(config).origin
    reports = {name: read_reports(workdir / name / "node" / "outbox.sqlite", origin) for name in names}
    checkpoints = {}
    for path in sorted((swarm.state_dir / "checkpoints").glob("*.safetensors")):
        checkpoint = read_checkpoint(path)
        checkpoints[checkpoint.epoch] = checkpoint.tensors
    return dict(reports=reports, checkpoints=checkpoints, status=status, codes=codes, lead_cores=lead_cores,
                trained_s=trained_s, wall_s=time.monotonic() - started)


# ---------------------------------------------------------------- figures


class Evaluation:
    """Held-out losses of a model state, computed the same way for every state of either side."""

    def __init__(self, config: str, data: Path):
        from potluck.manifest import param_dict
        from potluck.token_shards import decode_shard
        from potluck.tracker.swarm.swarm_config import parse_swarm_config
        from potluck.tracker.verifier.held_out import HeldOut

        manifest = parse_swarm_config(config)
        self.params = param_dict(manifest.task)
        self.learning_rate = manifest.hivemind.learning_rate
        shards = {d.kind: [] for d in manifest.datasets}
        for d in manifest.datasets:
            blob = (data / d.name).read_bytes()
            if hashlib.sha256(blob).hexdigest() != d.sha256:
                raise RuntimeError(f"{d.name}: sha256 differs from datasets.toml")
            shards[d.kind].append((d.sha256, blob))
        self.held_out = HeldOut(manifest.task.name, self.params, shards["eval"], manifest.swarm_seed)
        self.task = self.held_out.task
        length = self.params["seq_len"] + 1
        tokens = [decode_shard(blob) for _, blob in shards["eval"]]
        self.train_tokens = sum(len(decode_shard(blob)) for _, blob in shards["train"])
        self.eval_tokens = sum(len(t) for t in tokens)
        import torch

        windows = torch.stack([torch.from_numpy(t[i:i + length].astype("int64"))
                               for t in tokens for i in range(len(t) - length + 1)])
        self.every_window = list(windows.split(16))
        self.num_windows = len(windows)

    def losses(self, tensors) -> dict:
        import torch

        model = self.task.fresh_model()
        if tensors is not None:
            model.load_state_dict(tensors)
        model.eval()
        with torch.no_grad():
            every = sum(self.task.loss(model, b).item() * len(b) for b in self.every_window) / self.num_windows
        return dict(held_out=self.held_out.loss(model, 0), every_eval_window=every)


def throughput(reports: dict[str, list[dict]], epochs: int, *, drop_last: bool = True) -> dict:
    """Samples/s from the reports, each volunteer's first window (and with `drop_last`, its last) left out."""
    per_volunteer, timed_all = {}, []
    for name, windows in reports.items():
        if len(windows) != epochs:
            raise RuntimeError(f"{name}: expected {epochs} reports, got {len(windows)}")
        timed = windows[1:-1] if drop_last else windows[1:]
        per_volunteer[name] = sum(w["num_samples"] for w in timed) / sum(w["wall_time"] for w in timed)
        timed_all += timed
    span = max(w["started_at"] + w["wall_time"] for w in timed_all) - min(w["started_at"] for w in timed_all)
    return dict(samples_per_s=sum(per_volunteer.values()),
                per_volunteer={k: round(v, 1) for k, v in per_volunteer.items()},
                span_samples_per_s=sum(w["num_samples"] for w in timed_all) / span,
                timed_windows=len(timed_all))


def side_figures(side: dict, evaluation: Evaluation, args) -> dict:
    windows = [w for ws in side["reports"].values() for w in ws]
    curve = {epoch: evaluation.losses(tensors) for epoch, tensors in sorted(side["checkpoints"].items())}
    return dict(
        curve=curve,
        samples_before={epoch: sum(w["num_samples"] for w in windows if w["epoch"] < epoch) for epoch in curve},
        throughput=throughput(side["reports"], args.epochs),
        throughput_with_last=throughput(side["reports"], args.epochs, drop_last=False),
        windows={name: [[w["epoch"], w["num_samples"], round(w["wall_time"], 2), w["averaged"]] for w in ws]
                 for name, ws in side["reports"].items()},
        rounds={"reports": len(windows), "averaged": sum(w["averaged"] for w in windows),
                "failures": sorted({w["failure"][:120] for w in windows if w["failure"]})},
        epochs_reported=sorted({w["epoch"] for w in windows}),
        tracker_held_out_loss=side["status"].get("held_out_loss"),
        tracker_verdicts=(side["status"].get("verifier") or {}).get("verdicts"),
        lead_cores=round(side["lead_cores"], 3),
        trained_s=round(side["trained_s"], 1),
        wall_s=round(side["wall_s"], 1),
    )


def round_figures(alone: dict, swarm: dict, initial: dict) -> dict:
    common = sorted(set(alone["curve"]) & set(swarm["curve"]))
    if not common:
        raise RuntimeError(f"no epoch has a checkpoint on both sides (alone: {sorted(alone['curve'])}, "
                           f"swarm: {sorted(swarm['curve'])})")
    final = common[-1]
    a, s = alone["curve"][final], swarm["curve"][final]
    samples = {"alone": alone["samples_before"][final], "swarm": swarm["samples_before"][final]}
    epochs = sorted(set(alone["curve"]) | set(swarm["curve"]))
    return {
        "quality": {
            "final_epoch": final,
            "held_out_loss": {"alone": round(a["held_out"], 4), "swarm": round(s["held_out"], 4),
                              "initial": round(initial["held_out"], 4)},
            "ratio": s["held_out"] / a["held_out"],
            "every_eval_window_loss": {"alone": round(a["every_eval_window"], 4),
                                       "swarm": round(s["every_eval_window"], 4),
                                       "initial": round(initial["every_eval_window"], 4)},
            "every_eval_window_ratio": s["every_eval_window"] / a["every_eval_window"],
            "samples_to_final": samples,
            "samples_ratio": samples["swarm"] / samples["alone"] if samples["alone"] else None,
            "held_out_curve": {str(e): {side: round(f["curve"][e]["held_out"], 4) if e in f["curve"] else None
                                        for side, f in (("alone", alone), ("swarm", swarm))} for e in epochs},
            "ratio_by_common_epoch": {str(e): round(swarm["curve"][e]["held_out"] / alone["curve"][e]["held_out"], 4)
                                      for e in common},
            "tracker_held_out_loss": {"alone": alone["tracker_held_out_loss"],
                                      "swarm": swarm["tracker_held_out_loss"]},
        },
        "scaling": {
            "efficiency": swarm["throughput"]["samples_per_s"]
            / (len(VOLUNTEERS) * alone["throughput"]["samples_per_s"]),
            "span_efficiency": swarm["throughput"]["span_samples_per_s"]
            / (len(VOLUNTEERS) * alone["throughput"]["span_samples_per_s"]),
            "swarm_samples_per_s": round(swarm["throughput"]["samples_per_s"], 1),
            "alone_samples_per_s": round(alone["throughput"]["samples_per_s"], 1),
            "swarm_per_volunteer": swarm["throughput"]["per_volunteer"],
            "swarm_span_samples_per_s": round(swarm["throughput"]["span_samples_per_s"], 1),
            "alone_span_samples_per_s": round(alone["throughput"]["span_samples_per_s"], 1),
            "efficiency_with_last_window": swarm["throughput_with_last"]["samples_per_s"]
            / (len(VOLUNTEERS) * alone["throughput_with_last"]["samples_per_s"]),
            "timed_windows": {"alone": alone["throughput"]["timed_windows"],
                              "swarm": swarm["throughput"]["timed_windows"]},
            "lead_cores": {"alone": alone["lead_cores"], "swarm": swarm["lead_cores"]},
        },
        # Per volunteer, each window as its signed report gives it: [epoch, num_samples, wall_time, averaged].
        "windows": {"alone": alone["windows"], "swarm": swarm["windows"]},
        "averaging": {"alone": alone["rounds"], "swarm": swarm["rounds"]},
        "epochs_reported": {"alone": alone["epochs_reported"], "swarm": swarm["epochs_reported"]},
        "tracker_verdicts": {"alone": alone["tracker_verdicts"], "swarm": swarm["tracker_verdicts"]},
        "trained_s": {"alone": alone["trained_s"], "swarm": swarm["trained_s"]},
        "wall_s": {"alone": alone["wall_s"], "swarm": swarm["wall_s"]},
    }


def leftovers(sessions: set[int]) -> list[int]:
    """Processes still below this one, or in a session one of ours led (a daemon its parent left behind)."""
    found = set(descendant_pids(os.getpid()))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(entry.name)) is not None and int(fields[3]) in sessions:
            found.add(int(entry.name))
    return sorted(found)


def node_overhead(args) -> dict:
    command = [sys.executable, str(REPO / "benchmarks" / "node_overhead.py"), "--task", "lm",
               "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=OVERHEAD_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr[-1500:]}"}
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs each volunteer trains (--max-epochs)")
    parser.add_argument("--batch", type=int, default=16, help="each volunteer's micro-batch (--batch-size)")
    parser.add_argument("--steps-per-epoch", type=int, default=500,
                        help="micro-batches per volunteer per epoch in the swarm: target_batch_size = 3 x batch x this")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs (alone, swarm), order alternating")
    parser.add_argument("--timeout", type=float, default=480.0, help="seconds to wait for a side's volunteers")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every volunteer")
    parser.add_argument("--corpus", type=Path, default=REPO / "tests" / "tracker" / "corpus_es")
    parser.add_argument("--keep", type=Path, help="keep the swarms' files and logs in this folder")
    parser.add_argument("--with-overhead", action="store_true",
                        help="also run benchmarks/node_overhead.py --task lm and include its JSON")
    args = parser.parse_args()
    if args.epochs < 3:
        raise SystemExit("--epochs: at least 3 (the first window is left out of the rates, and the last epoch's "
                         "state is seldom checkpointed)")
    started, load_before = time.monotonic(), os.getloadavg()[0]
    sessions: set[int] = set()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="potluck-bench-quality-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = prepare_data(work, args.corpus)
        config = swarm_toml(data, batch=args.batch, steps_per_epoch=args.steps_per_epoch)
        evaluation = Evaluation(config, data)
        initial = evaluation.losses(None)
        try:
            for index in range(args.rounds):
                sides = {}
                for side in ("alone", "swarm") if index % 2 == 0 else ("swarm", "alone"):
                    print(f"round {index}: {side} ...", file=sys.stderr, flush=True)
                    names = VOLUNTEERS if side == "swarm" else VOLUNTEERS[:1]
                    sides[side] = side_figures(run_side(work / f"{side}-{index}", config, data, names, args, sessions),
                                               evaluation, args)
                rounds.append(round_figures(sides["alone"], sides["swarm"], initial))
        finally:
            left = leftovers(sessions)
    overhead = node_overhead(args) if args.with_overhead else None
    ratios = [r["quality"]["ratio"] for r in rounds]
    efficiencies = [r["scaling"]["efficiency"] for r in rounds]
    target = len(VOLUNTEERS) * args.batch * args.steps_per_epoch
    print(json.dumps({
        "task": "lm",
        # The headlines: medians over rounds.
        "quality_ratio": statistics.median(ratios),
        "quality_meets_target": statistics.median(ratios) <= TARGET_RATIO,
        "quality_target_ratio": TARGET_RATIO,
        "scaling_efficiency": statistics.median(efficiencies),
        "scaling_bound_from_cores": min(1.0, len(os.sched_getaffinity(0)) / (len(VOLUNTEERS) * args.threads)),
        "node_join_overhead": overhead if overhead is not None else
        "not run: benchmarks/node_overhead.py --task lm gives it (or pass --with-overhead)",
        "rounds": rounds,
        "settings": {
            "volunteers": len(VOLUNTEERS), "epochs": args.epochs, "batch_size": args.batch,
            "steps_per_epoch_per_volunteer": args.steps_per_epoch, "target_batch_size": target,
            "alone_steps_per_epoch": target // args.batch, "task_params": evaluation.params,
            "learning_rate": evaluation.learning_rate,
            "threads_per_volunteer": args.threads, "corpus": str(args.corpus),
            "train_tokens": evaluation.train_tokens, "eval_tokens": evaluation.eval_tokens,
            "eval_windows": {"held_out": len(evaluation.held_out.batches) * len(evaluation.held_out.batches[0]),
                             "every_eval_window": evaluation.num_windows},
            "alone": "one `node join` volunteer in a swarm of its own, the same swarm.toml",
        },
        "leftover_processes": left,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "total_s": round(time.monotonic() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
