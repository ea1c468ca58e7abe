"""A report flood against a real tracker process, beside honest volunteers: for tests and benchmarks/tracker.py.

Run as a script, it is one of three processes (each prints JSON lines on stdout):

* `tracker DIR`: a tracker (`Tracker.start`, SQLite, no verifier) for DIR/swarm.manifest; prints its
  port and pid, runs until stdin closes;
* `honest PORT MANIFEST DIR VOLUNTEERS INTERVAL SECONDS`: volunteers, each registered, each sending one
  report per INTERVAL seconds on a stream of its own (as node/reporter.py does), for SECONDS; prints how
  many were logged;
* `flood PORT MANIFEST DIR STREAMS SECONDS`: the red team's client, at full speed on STREAMS streams:
  junk reports of ~250 KiB (883 copies of one validly signed attestation each, from self-made,
  unregistered accounts, 8 to a message) and maximal reports (64 validly signed attestations each,
  from accounts it registered itself), until SECONDS have passed.

Processes of their own, so that the clients' Python does not share the tracker's GIL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

RPC_TIMEOUT = 10.0
JUNK_ATTESTATIONS = 883  # copies of one attestation: ~250 KiB, just under a report's size limit
JUNK_PER_MESSAGE = 8  # 8 x 250 KiB: just under a message's 2 MiB of reports
FLOOD_ACCOUNTS = 4  # accounts the flooder registers, for its maximal reports
SCRIPT = Path(__file__).resolve()


def start(args: list[str], log: Path) -> subprocess.Popen:
    """One of this script's processes, its stderr to `log`."""
    with log.open("w") as err:
        return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True)


def read_line(process: subprocess.Popen, what: str) -> dict:
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        raise RuntimeError(f"the {what} process exited ({process.returncode}) without answering")
    return json.loads(line)


def stop(process: subprocess.Popen) -> None:
    """Close its stdin (the tracker stops on that), then wait; kill it if it does not end."""
    if process.stdin is not None and not process.stdin.closed:
        process.stdin.close()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def rss_bytes(pid: int) -> dict[str, int]:
    """The process's resident memory now and at its peak, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) * 1024, "peak": int(fields["VmHWM"].split()[0]) * 1024}


class TrackerProcess:
    """`tracker DIR` as a child process: its `port`, `pid`; `stop()` ends it."""

    def __init__(self, directory: Path, manifest: bytes):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "swarm.manifest").write_bytes(manifest)
        self.process = start(["tracker", directory], directory / "tracker.log")
        try:
            answer = read_line(self.process, "tracker")
        except BaseException:
            stop(self.process)
            raise
        self.port, self.pid = answer["port"], answer["pid"]

    def stop(self) -> None:
        stop(self.process)


def run_honest(port: int, manifest: Path, directory: Path, volunteers: int, interval: float,
               seconds: float) -> dict:
    """`honest ...` as a child process, to its end: {"logged": n, "sent": n, "seconds": s, "problems": [...]}."""
    process = start(["honest", port, manifest, directory, volunteers, interval, seconds],
                    directory.with_suffix(".log"))
    try:
        return read_line(process, "honest volunteers")
    finally:
        stop(process)


def start_flood(port: int, manifest: Path, directory: Path, streams: int, seconds: float) -> subprocess.Popen:
    """`flood ...` as a child process; it prints {"ready": true} once it sends, and its counts at the end."""
    process = start(["flood", port, manifest, directory, streams, seconds], directory.with_suffix(".log"))
    try:
        read_line(process, "flood")
    except BaseException:
        stop(process)
        raise
    return process


# --- the processes ---------------------------------------------------------------------------------------


def _print(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _serve_tracker(directory: Path) -> None:
    import asyncio

    from potluck.manifest import read_manifest_file
    from potluck.tracker.tracker import Tracker, TrackerConfig

    async def run() -> None:
        tracker = await Tracker.start(read_manifest_file(directory / "swarm.manifest"), TrackerConfig(
            state_dir=directory, db=str(directory / "ledger.sqlite"), listen="127.0.0.1:0", verify=False))
        _print({"port": tracker.port, "pid": os.getpid()})
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes it (or dies)
        await tracker.stop(0.5)

    asyncio.run(run())


def _honest(port: int, manifest_path: Path, directory: Path, volunteers: int, interval: float, seconds: float) -> None:
    import grpc
    from swarmkit import Volunteer, submit_reports

    from potluck.manifest import read_manifest_file
    from potluck.proto import tracker_pb2 as pb
    from potluck.proto.tracker_pb2_grpc import TrackerStub

    manifest = read_manifest_file(manifest_path)
    directory.mkdir(parents=True, exist_ok=True)
    logged, sent, problems = [0] * volunteers, [0] * volunteers, []
    from grpckit import tracker_channel

    channels = [tracker_channel(f"127.0.0.1:{port}") for _ in range(volunteers)]
    people = [Volunteer.create(directory) for _ in range(volunteers)]
    for volunteer, channel in zip(people, channels, strict=True):
        TrackerStub(channel).Register(pb.RegisterRequest(binding=volunteer.binding(manifest)), timeout=RPC_TIMEOUT)
    started = time.monotonic()
    end = started + seconds

    def report(i: int) -> None:
        stub, sequence = TrackerStub(channels[i]), 0
        while (now := time.monotonic()) < end:
            sequence += 1
            sent[i] += 1
            try:
                [ack] = submit_reports(stub, [people[i].report(manifest, sequence)], per_message=1,
                                       timeout=min(RPC_TIMEOUT, max(0.1, end - now)))
                if ack.verdict == pb.ReportAck.ACCEPTED:
                    logged[i] += 1
                else:
                    problems.append(f"{ack.code}: {ack.reason}")
            except grpc.RpcError as e:
                problems.append(f"{e.code().name}: {e.details()}")
            time.sleep(max(0.0, interval - (time.monotonic() - now)))

    threads = [threading.Thread(target=report, args=(i,)) for i in range(volunteers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for channel in channels:
        channel.close()
    _print({"logged": sum(logged), "sent": sum(sent), "seconds": time.monotonic() - started,
            "problems": sorted(set(problems))[:5]})


def _flood(port: int, manifest_path: Path, directory: Path, streams: int, seconds: float) -> None:
    import grpc
    from swarmkit import Volunteer

    from potluck.attestations import sign_attestation
    from potluck.identity import AccountKey
    from potluck.manifest import read_manifest_file
    from potluck.proto import tracker_pb2 as pb
    from potluck.proto.envelope_pb2 import SignedEnvelope
    from potluck.proto.report_pb2 import AveragingRound
    from potluck.proto.tracker_pb2_grpc import TrackerStub
    from potluck.proto.wire import MAX_ATTESTATIONS_PER_REPORT

    manifest = read_manifest_file(manifest_path)
    origin = manifest.origin
    directory.mkdir(parents=True, exist_ok=True)
    from grpckit import tracker_channel

    channel = tracker_channel(f"127.0.0.1:{port}")
    stub = TrackerStub(channel)
    one = SignedEnvelope.FromString(sign_attestation(AccountKey.generate(), origin, 0, "QmNobody"))
    junk = AveragingRound(succeeded=True, attestations=[one] * JUNK_ATTESTATIONS)
    strangers = [Volunteer.create(directory) for _ in range(JUNK_PER_MESSAGE)]  # self-made, never registered
    mine = []  # accounts of its own, registered: their reports pass the cheap checks
    for _ in range(FLOOD_ACCOUNTS):
        volunteer = Volunteer.create(directory)
        try:
            stub.Register(pb.RegisterRequest(binding=volunteer.binding(manifest)), timeout=RPC_TIMEOUT)
            mine.append(volunteer)
        except grpc.RpcError:
            pass
    attestations = [SignedEnvelope.FromString(sign_attestation(AccountKey.generate(), origin, 0, f"QmSybil{i}"))
                    for i in range(MAX_ATTESTATIONS_PER_REPORT)]
    end = time.monotonic() + seconds
    counts = {"messages": 0, "acks": 0, "stream_errors": 0}
    lock = threading.Lock()

    def messages(n: int):
        sequence = 0
        while time.monotonic() < end:
            if mine and n % 2:  # half the streams: maximal reports of registered accounts
                sequence += 1
                volunteer = mine[sequence % len(mine)]
                yield pb.SubmitReportsRequest(reports=[volunteer.report(
                    manifest, sequence, averaging=AveragingRound(succeeded=True, attestations=attestations))])
            else:  # new bytes each time (a fresh state digest): no copy shares another's answer
                yield pb.SubmitReportsRequest(reports=[stranger.report(manifest, 1, averaging=junk)
                                                       for stranger in strangers])

    def stream(n: int) -> None:
        while time.monotonic() < end:
            try:
                for response in stub.SubmitReports(messages(n), timeout=max(0.1, end - time.monotonic())):
                    with lock:
                        counts["messages"] += 1
                        counts["acks"] += len(response.acks)
            except grpc.RpcError:
                with lock:
                    counts["stream_errors"] += 1
                time.sleep(0.01)

    threads = [threading.Thread(target=stream, args=(n,), daemon=True) for n in range(streams)]
    for thread in threads:
        thread.start()
    _print({"ready": True})
    for thread in threads:
        thread.join(seconds + 30)
    channel.close()
    _print(counts)


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    if kind == "tracker":
        _serve_tracker(Path(rest[0]))
    elif kind == "honest":
        _honest(int(rest[0]), Path(rest[1]), Path(rest[2]), int(rest[3]), float(rest[4]), float(rest[5]))
    elif kind == "flood":
        _flood(int(rest[0]), Path(rest[1]), Path(rest[2]), int(rest[3]), float(rest[4]))
    else:
        raise SystemExit(f"unknown process kind {kind!r}")
