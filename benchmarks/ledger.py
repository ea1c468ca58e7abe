"""Ledger and audit throughput, printed as one JSON object.

Every rate is also given as a ratio to PyNaCl Ed25519 verifications per second on one core, measured
in the same run, so figures from different machines (and from a busy machine) can be compared:

* durable appends to SQLite through `Ledger.append`, in batches of 256 and one commit (fsync) each;
* inclusion proofs generated and verified on a 1,000,000-entry `MerkleTree`;
* audit replay (`potluck.audit.Replay`) over 20,000 real signed grant entries, on every core and on one;
* a whole first `audit verify` over gRPC (tracker in this process, so it shares the GIL: a floor).

Timed sections run `--repeat` times and report the best run, as `timeit` does: on a shared machine the
slow runs measure the neighbours. The baseline is measured the same way, before and after.

Run: .venv/bin/python benchmarks/ledger.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from baseline import best_of, ed25519_verifications_per_s
from nacl.signing import SigningKey

from potluck.audit import AuditConfig, Replay, verify_log
from potluck.audit.replay import default_num_threads
from potluck.entries import grant_entry, serialize_entry
from potluck.proto.report_pb2 import ContributionReport
from potluck.signing import PURPOSE_REPORT, seal
from potluck.tlog import MerkleTree, verify_inclusion
from potluck.tls import new_certificate
from potluck.tracker.ledger.ledger import Ledger
from potluck.tracker.ledger.store import open_store
from potluck.tracker.service.ledger_service import LedgerService
from potluck.tracker.service.server import start_server

ORIGIN = "potluck.swarm/bench/ledger"
FLOPS_PER_SAMPLE = 6 * 124_000_000 * 256
FLOPS_PER_CREDIT = 10**15
TARGETS = {  # minimum ratio to Ed25519 verifications/s on one core
    "sqlite_appends_per_s_batch_256": 0.5,
    "inclusion_verifications_per_s": 3.0,
    "audit_replay_entries_per_s": 0.8,
}


def signed_grants(num_entries: int, num_accounts: int = 100) -> list:
    """Grant entries for real signed contribution reports, as a tracker logs them."""
    accounts = [SigningKey(hashlib.sha256(b"account%d" % i).digest()) for i in range(num_accounts)]
    entries = []
    for i in range(num_entries):
        key = accounts[i % num_accounts]
        account_id = bytes(key.verify_key).hex()
        report = ContributionReport(
            origin=ORIGIN, manifest_id=b"\x11" * 32, account_id=account_id, peer_id="QmBenchPeer",
            sequence=i // num_accounts + 1, epoch=i // num_accounts, batch_size=32, losses=[2.5] * 8,
            num_samples=256, num_tokens=256 * 1024, state_digest=hashlib.sha256(b"%d" % i).digest(),
            wall_time=12.5, device_class="cuda:NVIDIA H200", started_at=1.7e9 + i)
        envelope = seal(report.SerializeToString(deterministic=True), purpose=PURPOSE_REPORT, origin=ORIGIN,
                        signing_key=key)
        entries.append(grant_entry(origin=ORIGIN, report=envelope, account_id=account_id, num_samples=256,
                                   flops_per_sample=FLOPS_PER_SAMPLE, policy_version=1,
                                   flops_per_credit=FLOPS_PER_CREDIT, logged_at_ms=1_700_000_000_000 + i))
    return entries


def appends_per_s(directory: Path, entries: list, batch_size: int, max_seconds: float) -> float:
    """Entries durably appended per second through `Ledger.append`, `batch_size` per commit."""
    log_key = SigningKey(b"\x02" * 32)
    with open_store(directory / f"appends-{batch_size}.sqlite") as store:
        ledger = Ledger(store, origin=ORIGIN, log_key=log_key)
        count, start = 0, time.perf_counter()
        for offset in range(0, len(entries), batch_size):
            ledger.append(entries[offset:offset + batch_size])
            count += min(batch_size, len(entries) - offset)
            if time.perf_counter() - start > max_seconds:
                break
        return count / (time.perf_counter() - start)


def tree_figures(num_leaves: int, num_proofs: int) -> dict:
    started = time.perf_counter()
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(num_leaves)]
    tree = MerkleTree.from_leaf_hashes(leaves)
    build_s = time.perf_counter() - started
    root, rng = tree.root(), random.Random(7)
    indices = [rng.randrange(num_leaves) for _ in range(num_proofs)]
    start = time.perf_counter()
    proofs = [tree.inclusion_proof(i) for i in indices]
    proof_rate = num_proofs / (time.perf_counter() - start)
    start = time.perf_counter()
    for index, proof in zip(indices, proofs, strict=True):
        verify_inclusion(leaves[index], index, num_leaves, proof, root)
    verify_rate = num_proofs / (time.perf_counter() - start)
    return {"tree_build_s": build_s, "proofs": proof_rate, "verifications": verify_rate}


def replay_per_s(data: list[bytes], num_threads: int) -> float:
    replay = Replay(ORIGIN, num_threads=num_threads)
    start = time.perf_counter()
    replay.feed(data)
    replay.finish()
    elapsed = time.perf_counter() - start
    if replay.problems:
        raise SystemExit(f"benchmark log did not replay cleanly: {replay.problems[0]}")
    return len(data) / elapsed


def first_audit(directory: Path, entries: list) -> tuple[float, dict[str, float]]:
    """A whole first `audit verify` (download, hash, replay, balances) against a tracker in this process."""
    log_key = SigningKey(b"\x03" * 32)
    with open_store(directory / "served.sqlite") as store:
        ledger = Ledger(store, origin=ORIGIN, log_key=log_key)
        ledger.append(entries)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server, port = asyncio.run_coroutine_threadsafe(
            start_server("127.0.0.1:0", new_certificate(), ledger_service=LedgerService(ledger, FLOPS_PER_CREDIT)),
            loop).result(30)
        try:
            config = AuditConfig(tracker=f"127.0.0.1:{port}", log_key=ledger.verifier_key,
                                 state_dir=directory / "auditor")
            start = time.perf_counter()
            result = verify_log(config)
            elapsed = time.perf_counter() - start
            phases = {f"{name}_per_s": round(len(entries) / seconds, 1) for name, seconds in result.timings.items()}
            if not result.ok:
                raise SystemExit(f"benchmark audit failed: {result.problems[0]}")
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(0.5), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
    return len(entries) / elapsed, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller sizes, for a smoke run.")
    parser.add_argument("--dir", type=Path, default=None, help="Where the SQLite files go (default: the temp dir); "
                                                               "put them on the disk a tracker would use.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per timed section; the best counts.")
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    num_entries, num_leaves, num_single = (2_000, 100_000, 100) if args.quick else (20_000, 1_000_000, 500)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]

    baseline_before = best_of(repeat, ed25519_verifications_per_s, 0.5 if args.quick else 1.0)
    entries = signed_grants(num_entries)
    data = [serialize_entry(e) for e in entries]
    with tempfile.TemporaryDirectory(prefix="potluck-bench-", dir=args.dir) as tmp:
        directory = Path(tmp)
        rates = {
            "sqlite_appends_per_s_batch_256": appends_per_s(directory, entries, 256, max_seconds=30),
            "sqlite_appends_per_s_batch_1": appends_per_s(directory, entries[:num_single], 1, max_seconds=20),
        }
        tree = tree_figures(num_leaves, 20_000)
        rates["inclusion_proofs_per_s"] = tree["proofs"]
        rates["inclusion_verifications_per_s"] = tree["verifications"]
        rates["audit_replay_entries_per_s"] = best_of(repeat, replay_per_s, data, default_num_threads())
        rates["audit_replay_entries_per_s_one_thread"] = best_of(repeat, replay_per_s, data, 1)
        rates["audit_verify_first_run_entries_per_s"], phases = first_audit(directory, entries)
        baseline_after = best_of(repeat, ed25519_verifications_per_s, 0.5 if args.quick else 1.0)
    baseline = max(baseline_before, baseline_after)

    figures = {}
    for name, rate in rates.items():
        figure = {"per_s": round(rate, 1), "ratio_to_ed25519": round(rate / baseline, 3)}
        if name in TARGETS:
            figure["target_ratio"] = TARGETS[name]
            figure["meets_target"] = rate / baseline >= TARGETS[name]
        figures[name] = figure
    figures["audit_verify_first_run_entries_per_s"]["phases"] = phases
    print(json.dumps({
        "baseline": {"ed25519_verifications_per_s_one_core": round(baseline, 1),
                     "measured_before": round(baseline_before, 1), "measured_after": round(baseline_after, 1)},
        "figures": figures,
        "sizes": {"repeat": repeat, "entries": num_entries, "tree_leaves": num_leaves, "single_appends": num_single,
                  "tree_build_s": round(tree["tree_build_s"], 2), "replay_threads": default_num_threads()},
        "machine": {"cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(), "platform": sys.platform,
                    # Other work on the machine skews the multi-threaded figures most: say how busy it was.
                    "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "total_s": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
