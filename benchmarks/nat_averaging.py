"""What the lead's public host pays to help volunteers behind NAT average, printed as one JSON object.

Three configurations, each a fresh swarm (tests/hostswarm.py on hosts made of network namespaces,
tests/netkit.py) of three volunteers training `--epochs` epochs with the test swarms' settings
(tracker/swarm/local_swarm.py: the `synthetic` task, every report recomputed), the lead on a
public host running the README's `potluck swarm start … --listen 0.0.0.0:50051`:

* public_no_aux: three public volunteers, the lead started with `--no-aux-peer` (the baseline: the
  lead's host runs only the bootstrap DHT peer, the tracker and its verifier);
* public_aux: three public volunteers, with the averaging helper (tracker/swarm/aux_peer.py, the
  default);
* nat_aux: three volunteers each behind a NAT router of its own, with the helper: they find out
  that they cannot be dialled and average in hivemind's client mode, the helper reducing for them.

For each: the averaging rounds the tracker logged (one per report) and how many succeeded; the bytes
received and sent on the lead namespace's `eth0` (`/sys/class/net/eth0/statistics/{rx,tx}_bytes`,
read before the volunteers join and after they exit), in all and per round (divided by the epochs
each volunteer trained, `--epochs`; a volunteer that loads state from peers skips an epoch number, so
the epochs logged may number more), as a ratio to the model's parameter bytes (the
task's model built from the same swarm.toml; compression is "none", so float32 on the wire) and to
the baseline's bytes measured in the same run. Each epoch is two hivemind rounds (gradients, then
parameters): in each, a client-mode volunteer sends the helper its whole vector and gets the average
back, so the helper's share is about 2 models in and 2 out per NAT'd volunteer per epoch, before
overheads. Much of the lead's traffic is not averaging but DHT requests, which flow at a steady rate
(hundreds of KB/s here) while any volunteer is connected, training or not: bytes per round grow with
how long an epoch takes (a straggler finishing its last epoch alone adds to them), so compare
configurations run back to back, and read the per-second figures and traces alongside.

The same bytes are also split by TCP port with iptables counters on the lead's eth0 (no target: they
only count; IP bytes, without the 14-byte Ethernet headers eth0's statistics include): local port
31337 (bootstrap DHT peer), 31338 (the helper) and 50051 (the tracker), whichever side dialled
(libp2p dials from its listening port), and the rest (other). With `--keep DIR`, these counters are
also sampled every second while the volunteers train, into DIR/<configuration>/port_trace.json.
The helper is a full DHT peer too (hivemind's auxiliary peers are not in client mode), so its port
carries the DHT requests volunteers send it as well as the averaging it takes part in.

CPU: user+sys seconds from /proc/<pid>/stat (plus cutime/cstime: children already reaped), summed
over a process and everything below it, read after the swarm is up, after an idle `--idle-s`
interval, and just before the swarm is stopped; given over the run (joins to exit) and per round.
The helper's process is found by the port it listens on: `ss -ltnp` inside the lead's namespace
names the p2pd daemon listening on 31338, and its ancestors are followed (via /proc) up to the
direct child of the `swarm start` process, a GroupProcess fork that leads its own process group
(checked); its tree holds the helper's hivemind DHT process, p2pd and both averager processes. The
bootstrap peer is found the same way by port 31337, and `lead` is the whole `swarm start` tree.
The helper polls `optimizer.step()` every 0.1 s, so its idle rate (CPU s per s before anyone joins)
is given too, to tell polling from reducing.

Bytes and CPU seconds are what is measured, not wall time: other jobs may share the machine.

Needs root (network namespaces, iptables). Run:
    .venv/bin/python benchmarks/nat_averaging.py [--epochs 5] [--timeout 600] [--only public_aux,nat_aux]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import netkit  # noqa: E402  (the tests' hosts and swarm)
from hostswarm import DHT_PORT, TRACKER_PORT, HostSwarm  # noqa: E402
from netkit import Host, Network  # noqa: E402
from proctree import descendant_pids, stat_fields  # noqa: E402

from potluck.manifest import param_dict  # noqa: E402
from potluck.node.tasks import get_task  # noqa: E402
from potluck.tracker.swarm.local_swarm import local_swarm_config  # noqa: E402
from potluck.tracker.swarm.swarm_config import parse_swarm_config  # noqa: E402

AUX_PORT = 31338  # `swarm start`'s default --aux-port
VOLUNTEERS = ("v1", "v2", "v3")
CONFIGURATIONS = {  # name: (where each volunteer is, whether the lead runs the helper)
    "public_no_aux": ("public", False),
    "public_aux": ("public", True),
    "nat_aux": ("nat", True),
}
BASELINE = "public_no_aux"
PORTS = {"bootstrap_31337": DHT_PORT, "aux_31338": AUX_PORT, "tracker_50051": TRACKER_PORT}
CLK_TCK = os.sysconf("SC_CLK_TCK")
FIND_TIMEOUT = 30.0
TRACE_INTERVAL = 1.0


# --- reading the lead's host ------------------------------------------------------------------------------


def eth0_bytes(host: Host) -> dict[str, int]:
    found = {}
    for way in ("rx", "tx"):
        out = subprocess.run(host.command(["cat", f"/sys/class/net/eth0/statistics/{way}_bytes"]), capture_output=True,
                             text=True, timeout=10, check=True).stdout
        found[way] = int(out)
    return found


def install_port_counters(host: Host) -> None:
    """Counting rules (no target) on the lead's eth0, per local port and in all."""
    for port in PORTS.values():
        host.run("iptables", "-A", "INPUT", "-i", "eth0", "-p", "tcp", "--dport", str(port))
        host.run("iptables", "-A", "OUTPUT", "-o", "eth0", "-p", "tcp", "--sport", str(port))
    host.run("iptables", "-A", "INPUT", "-i", "eth0")
    host.run("iptables", "-A", "OUTPUT", "-o", "eth0")


def port_counters(host: Host) -> dict[str, dict[str, int]]:
    """IP bytes in (rx) and out (tx) of the lead's eth0 per local port, from `iptables-save -c`."""
    text = subprocess.run(host.command(["iptables-save", "-c", "-t", "filter"]), capture_output=True, text=True,
                          timeout=10, check=True).stdout
    found = {name: {"rx": 0, "tx": 0} for name in [*PORTS, "all"]}
    for line in text.splitlines():
        match = re.match(r"\[(\d+):(\d+)\] -A (INPUT|OUTPUT) (.*)$", line)
        if match is None:
            continue
        count, chain, rule = int(match[2]), match[3], match[4]
        way = "rx" if chain == "INPUT" else "tx"
        port = re.search(r"--[ds]port (\d+)", rule)
        if port is None:
            found["all"][way] += count
        else:
            found[next(n for n, p in PORTS.items() if p == int(port[1]))][way] += count
    return found


def cpu_seconds(pids: list[int]) -> float:
    """user+sys (own, and of children already reaped) of `pids`, in seconds; a pid gone counts 0."""
    total = 0
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None:  # fields[0] is the state (stat's field 3): utime..cstime are 14..17
            total += sum(int(f) for f in fields[11:15])
    return total / CLK_TCK


def tree(pid: int | None) -> list[int]:
    return [] if pid is None else [pid, *descendant_pids(pid)]


def listening_pids(host: Host, port: int) -> list[int]:
    out = subprocess.run(host.command(["ss", "-ltnpH", f"sport = :{port}"]), capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return sorted({int(p) for p in re.findall(r"pid=(\d+)", out)})


def group_child_listening(host: Host, port: int, swarm_pid: int) -> int:
    """The direct child of `swarm start` (a GroupProcess) whose tree holds what listens on `port`."""
    deadline = time.monotonic() + FIND_TIMEOUT
    while not (pids := listening_pids(host, port)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port} in {host.namespace}")
        time.sleep(0.5)
    leaders = set()
    for pid in pids:
        at = pid
        while (fields := stat_fields(at)) is not None and int(fields[1]) != swarm_pid:
            at = int(fields[1])
            if at <= 1:
                raise RuntimeError(f"pid {pid} listening on {port} is not below swarm start ({swarm_pid})")
        if fields is None:
            raise RuntimeError(f"pid {pid} listening on {port} is gone")
        if int(fields[2]) != at:
            raise RuntimeError(f"pid {at} (listening on {port} below swarm start) does not lead its process group")
        leaders.add(at)
    if len(leaders) != 1:
        raise RuntimeError(f"port {port}: listeners below several children of swarm start: {sorted(leaders)}")
    return leaders.pop()


def model_parameter_bytes() -> dict:
    manifest = parse_swarm_config(local_swarm_config("hosts", num_nodes=len(VOLUNTEERS)))
    model = get_task(manifest.task.name, param_dict(manifest.task)).build_model()
    return {"task": manifest.task.name, "params": param_dict(manifest.task),
            "parameters": sum(p.numel() for p in model.parameters()),
            "bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "compression": manifest.hivemind.compression}


# --- one configuration --------------------------------------------------------------------------------


def trace_ports(host: Host, stop: threading.Event, into: list) -> None:
    started = time.monotonic()
    while not stop.wait(TRACE_INTERVAL):
        try:
            into.append({"t": round(time.monotonic() - started, 2), **port_counters(host)})
        except (subprocess.SubprocessError, OSError):
            return


def run_configuration(name: str, where: str, aux: bool, *, epochs: int, timeout: float, idle_s: float,
                      workdir: Path, trace: bool) -> dict:
    net = Network(f"na{name[0]}{'a' if aux else 'n'}{os.getpid() % 10000}")
    swarm = None
    started = time.monotonic()
    try:
        lead = net.public("lead")
        swarm = HostSwarm(workdir, net, lead)
        swarm.start(num_nodes=len(VOLUNTEERS), extra=() if aux else ("--no-aux-peer",))
        swarm_pid = swarm.processes["swarm"].popen.pid
        install_port_counters(lead)
        hosts = {v: net.public(v) if where == "public" else net.behind_nat(v) for v in VOLUNTEERS}
        aux_pid = group_child_listening(lead, AUX_PORT, swarm_pid) if aux else None
        if not aux and listening_pids(lead, AUX_PORT):
            raise RuntimeError("--no-aux-peer, yet something listens on the helper's port")
        bootstrap_pid = group_child_listening(lead, DHT_PORT, swarm_pid)
        parts = {"lead": lambda: tree(swarm_pid), "aux_peer": lambda: tree(aux_pid),
                 "bootstrap_peer": lambda: tree(bootstrap_pid)}
        cpu_up = {k: cpu_seconds(f()) for k, f in parts.items()}
        time.sleep(idle_s)
        cpu_before = {k: cpu_seconds(f()) for k, f in parts.items()}
        bytes_before, ports_before = eth0_bytes(lead), port_counters(lead)
        joined = time.monotonic()
        samples: list = []
        stop_trace = threading.Event()
        tracer = threading.Thread(target=trace_ports, args=(lead, stop_trace, samples), daemon=True)
        if trace:
            tracer.start()
        for volunteer, host in hosts.items():
            swarm.join(volunteer, host, max_epochs=epochs)
        codes = swarm.wait(list(VOLUNTEERS), timeout)
        trained_s = time.monotonic() - joined
        stop_trace.set()
        if trace:
            tracer.join(10)
            (workdir / "port_trace.json").write_text(json.dumps(samples))
        bytes_after, ports_after = eth0_bytes(lead), port_counters(lead)
        processes_below = {k: len(f()) for k, f in parts.items()}
        cpu_after = {k: cpu_seconds(f()) for k, f in parts.items()}  # just before the swarm stops
        rounds = swarm.rounds()
        logs = {v: swarm.processes[v].log.read_text(errors="replace") for v in VOLUNTEERS}
    finally:
        if swarm is not None:
            swarm.stop()
        net.close()
    epochs_trained = epochs  # each volunteer exits after --max-epochs windows
    by_epoch = collections.defaultdict(lambda: [0, 0])
    for r in rounds:
        by_epoch[r.epoch][0] += r.succeeded
        by_epoch[r.epoch][1] += 1
    eth0 = {way: bytes_after[way] - bytes_before[way] for way in ("rx", "tx")}
    eth0["total"] = eth0["rx"] + eth0["tx"]
    ports = {k: {way: ports_after[k][way] - ports_before[k][way] for way in ("rx", "tx")} for k in ports_after}
    ports["other"] = {way: ports["all"][way] - sum(ports[k][way] for k in PORTS) for way in ("rx", "tx")}
    cpu = {}
    for k in parts:
        if k == "aux_peer" and aux_pid is None:
            cpu[k] = None
            continue
        run = cpu_after[k] - cpu_before[k]
        cpu[k] = {"during_run_s": round(run, 2), "per_round_s": round(run / epochs_trained, 3),
                  "idle_cores": round((cpu_before[k] - cpu_up[k]) / idle_s, 4) if idle_s > 0 else None,
                  "idle_share_of_run": round((cpu_before[k] - cpu_up[k]) / idle_s * trained_s / run, 3)
                  if idle_s > 0 and run > 0 else None,
                  "since_start_s": round(cpu_after[k], 2), "processes": processes_below[k]}
    client_mode = sum("averaging in client mode" in log for log in logs.values())
    return {
        "volunteers": where, "aux_peer": aux,
        "exit_codes": codes,
        "volunteers_in_client_mode": client_mode,
        "epochs_trained": epochs_trained,
        "epochs_logged": len(by_epoch),
        "rounds": {"logged": len(rounds), "succeeded": sum(r.succeeded for r in rounds),
                   "by_epoch": {str(e): f"{ok}/{n}" for e, (ok, n) in sorted(by_epoch.items())},
                   "failures": dict(collections.Counter(r.failure for r in rounds if not r.succeeded)),
                   "mean_loss_first_last_epoch": [round(sum(r.mean_loss for r in rounds if r.epoch == e)
                                                        / max(1, sum(r.epoch == e for r in rounds)), 4)
                                                  for e in (min(by_epoch, default=0), max(by_epoch, default=0))]},
        "lead_eth0_bytes": eth0,
        "lead_eth0_bytes_per_round": {k: round(v / epochs_trained) for k, v in eth0.items()},
        "lead_eth0_bytes_per_s_of_training": {k: round(v / trained_s) for k, v in eth0.items()},
        "lead_ip_bytes_by_local_port": {k: v for k, v in ports.items() if k != "all"},
        "lead_ip_bytes_all": ports["all"],
        "cpu": cpu,
        "trained_s": round(trained_s, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "_rounds_raw": [(r.name, r.epoch, r.succeeded) for r in rounds],
    }


# --- the whole benchmark ------------------------------------------------------------------------------


def ratios(found: dict, model_bytes: int) -> None:
    """Add ratios to the model's bytes and to the baseline's bytes, in place."""
    base = found.get(BASELINE)
    for name, result in found.items():
        per_round = result["lead_eth0_bytes_per_round"]
        result["per_round_ratio_to_model_bytes"] = {k: round(v / model_bytes, 2) for k, v in per_round.items()}
        aux_port = result["lead_ip_bytes_by_local_port"]["aux_31338"]
        result["aux_port_bytes_per_round_ratio_to_model_bytes"] = {
            way: round(aux_port[way] / result["epochs_trained"] / model_bytes, 2) for way in ("rx", "tx")}
        if base is None:
            continue
        result["ratio_to_baseline"] = {k: round(v / base["lead_eth0_bytes"][k], 3)
                                       for k, v in result["lead_eth0_bytes"].items()}
        if name != BASELINE:
            # What the helper adds over the baseline, per round and per volunteer, in models' worth.
            extra = {k: result["lead_eth0_bytes_per_round"][k] - base["lead_eth0_bytes_per_round"][k]
                     for k in ("rx", "tx")}
            result["over_baseline_per_round_per_volunteer_ratio_to_model_bytes"] = {
                k: round(v / len(VOLUNTEERS) / model_bytes, 2) for k, v in extra.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="Epochs each volunteer trains (--max-epochs).")
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds to wait for the volunteers, per swarm.")
    parser.add_argument("--idle-s", type=float, default=10.0, help="Seconds the swarm idles before the joins "
                                                                   "(the helper's polling cost).")
    parser.add_argument("--only", default=",".join(CONFIGURATIONS), help="Comma-separated configurations to run.")
    parser.add_argument("--keep", type=Path, help="Keep the swarms' logs, and a per-second trace of the port "
                                                  "counters, in this folder.")
    parser.add_argument("--rounds", action="store_true", help="Include every logged round (name, epoch, succeeded).")
    args = parser.parse_args()
    if (why := netkit.unavailable()) is not None:
        raise SystemExit(f"cannot run: {why}")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := [n for n in names if n not in CONFIGURATIONS]:
        raise SystemExit(f"--only: unknown configurations {unknown} (of {list(CONFIGURATIONS)})")
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    model = model_parameter_bytes()
    found = {}
    with tempfile.TemporaryDirectory(prefix="potluck-bench-nat-") as tmp:
        root = args.keep or Path(tmp)
        for name in names:
            where, aux = CONFIGURATIONS[name]
            workdir = root / name
            workdir.mkdir(parents=True, exist_ok=True)
            print(f"{name}: 3 {where} volunteers, {'with' if aux else 'without'} the helper ...", file=sys.stderr,
                  flush=True)
            found[name] = run_configuration(name, where, aux, epochs=args.epochs, timeout=args.timeout,
                                            idle_s=args.idle_s, workdir=workdir, trace=args.keep is not None)
            raw = found[name].pop("_rounds_raw")
            if args.rounds:
                found[name]["rounds"]["all"] = raw
    ratios(found, model["bytes"])
    leftovers = descendant_pids(os.getpid())
    print(json.dumps({
        "model": model,
        "configurations": found,
        "baseline": BASELINE if BASELINE in found else None,
        "settings": {"volunteers": len(VOLUNTEERS), "epochs": args.epochs, "idle_s": args.idle_s,
                     "note": "a round is one epoch: one gradient round and one parameter round in hivemind; bytes "
                             "are the lead namespace's eth0 from before the joins to after the volunteers exit"},
        "leftover_processes": leftovers,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "total_s": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
