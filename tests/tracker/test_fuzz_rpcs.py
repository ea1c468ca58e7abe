"""Every RPC the tracker serves, fuzzed: a `potluck tracker serve` process takes 10,000 hostile inputs and
stays up, answers each within a deadline, never tells a caller its insides, and keeps an audit-clean log.

The methods and their request types come from the tracker's own reflection service, so a method added
later is fuzzed too. Inputs are random messages, mutated real requests (signed bindings and reports of
real volunteers) and raw garbage (tests/fuzzkit.py), from a seeded RNG: POTLUCK_FUZZ_SEED replays a run.
"""

import asyncio
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from fuzzkit import Fuzzer, Method, reflected_methods
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpckit import tracker_channel
from proctree import descendant_pids
from swarmkit import Volunteer, make_manifest, submit_reports

from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import LedgerStub, TrackerStub
from potluck.proto.wire import MAX_MESSAGE_BYTES
from potluck.tls import TLS_NAME, probe_certificate
from potluck.tracker.swarm.local_swarm import free_port

pytestmark = pytest.mark.timeout(120)  # about 25 s here (10,000 inputs take 10 to 13)
POTLUCK = str(Path(sys.executable).parent / "potluck")
NUM_INPUTS = int(os.environ.get("POTLUCK_FUZZ_INPUTS", 10_000))  # more for a longer run by hand
CONCURRENCY = 48  # calls in flight: enough to keep the tracker's two cores busy, below its 256 at once
ANSWER_TIMEOUT = 20.0  # seconds for any one call: a reachability dial-back takes at most 3
STREAM_ANSWERS = 4  # responses read from a stream before it is cancelled (Health.Watch never ends)
# What no status may carry: a class or exception name, a traceback, grpc's default "Unexpected", a path,
# SQL. (Random text leaves out '/', '<' and '.', since a status may echo the caller's text; fuzzkit.py.)
LEAK = re.compile(r"<class|Traceback|Exception|Unexpected|\b[A-Z]\w*Error\b|\.py\b|(?:^|[\s'\"(=:])/\w"
                  r"|\b(?:SELECT|INSERT|UPDATE|DELETE|WHERE|TABLE)\b|sqlite|psycopg", re.MULTILINE)
# A handler's unexpected fault (UNKNOWN is grpc's default answer to one, INTERNAL the incident interceptor's);
# and a call that got no answer in time.
FAULTS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.fixture
def served(tmp_path):
    """`potluck tracker serve` as a process of its own, its log in tmp_path/tracker.log."""
    signed = make_manifest(tmp_path)
    (tmp_path / "swarm.manifest").write_bytes(signed.envelope)
    address = f"127.0.0.1:{free_port()}"
    with (tmp_path / "tracker.log").open("w") as log:
        server = subprocess.Popen([POTLUCK, "tracker", "serve", "--manifest", str(tmp_path / "swarm.manifest"),
                                   "--state-dir", str(tmp_path / "tracker"), "--listen", address],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            yield server, signed, address
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def test_every_rpc_survives_ten_thousand_hostile_inputs(served, tmp_path):
    server, signed, address = served
    seed = int(os.environ.get("POTLUCK_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fuzz seed {seed} (POTLUCK_FUZZ_SEED={seed} replays it)")
    with tracker_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        methods = reflected_methods(channel)
        valid = _valid_requests(channel, signed, tmp_path, address)
    paths = {method.path for method in methods}
    every = {f"/potluck.v1.{service.name}/{m.name}" for service in pb.DESCRIPTOR.services_by_name.values()
             for m in service.methods}
    assert every | {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
                    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"} <= paths, paths
    rss_before = _rss_mib(server.pid)

    started = time.monotonic()
    calls, codes, problems = asyncio.run(_fuzz(address, methods, Fuzzer(random.Random(seed), valid)))
    wall = time.monotonic() - started
    rss_after = _rss_mib(server.pid)
    print(f"{sum(calls.values())} inputs in {wall:.1f} s ({CONCURRENCY} at once); tracker RSS "
          f"{rss_before:.0f} -> {rss_after:.0f} MiB; client peak RSS {_own_peak_mib():.0f} MiB")
    for path in sorted(calls):
        print(f"  {path}: {calls[path]} inputs, {dict(sorted(codes[path].items()))}")
    print("  status codes:", dict(sum(codes.values(), Counter()).most_common()))

    assert server.poll() is None, f"the tracker exited ({server.returncode}) under fuzzing"
    distinct = Counter((path, code, details[:120]) for path, _, code, details in problems)
    assert not problems, f"{len(problems)} bad answers: {distinct.most_common(8)}"
    assert sum(calls.values()) >= NUM_INPUTS and set(calls) == paths
    with tracker_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    audit = subprocess.run([POTLUCK, "audit", "verify", "--tracker", address, "--log-key",
                            str(tmp_path / "tracker" / "log.pub"), "--state-dir", str(tmp_path / "audit")],
                           capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    log = (tmp_path / "tracker.log").read_text()
    assert "incident" not in log and "Traceback" not in log, log[-3000:]
    _wait_for(lambda: descendant_pids(os.getpid()) == [], "the tracker's processes to be gone")


def _valid_requests(channel, signed, tmp_path, address) -> dict[str, list[bytes]]:
    """Real requests of every method, as wire bytes: what the mutations start from. Some reports are logged."""
    stub, ledger = TrackerStub(channel), LedgerStub(channel)
    volunteers = [Volunteer.create(tmp_path) for _ in range(3)]
    for volunteer in volunteers:
        stub.Register(pb.RegisterRequest(binding=volunteer.binding(signed)), timeout=10)
    reports = [volunteer.report(signed, sequence) for volunteer in volunteers for sequence in range(1, 9)]
    submit_reports(stub, reports[::8])  # the first of each: the log has grants, the ledger balances
    size = ledger.GetCheckpoint(pb.GetCheckpointRequest(), timeout=10).checkpoint.split("\n")[1]
    newcomers = [Volunteer.create(tmp_path).binding(signed) for _ in range(4)]
    accounts = [volunteer.account.account_id for volunteer in volunteers]
    requests = {
        "Tracker/GetManifest": [pb.GetManifestRequest()],
        "Tracker/Register": [pb.RegisterRequest(binding=binding) for binding in newcomers],
        "Tracker/SubmitReports": [pb.SubmitReportsRequest(reports=reports[i:i + 3]) for i in range(0, 24, 3)],
        "Tracker/FetchShard": [pb.FetchShardRequest(sha256="0" * 64)],
        "Tracker/GetStatus": [pb.StatusRequest(account_id=account) for account in accounts],
        "Tracker/CheckReachability": [pb.ReachabilityRequest(port=int(address.rsplit(":", 1)[1]))],
        "Ledger/GetCheckpoint": [pb.GetCheckpointRequest()],
        "Ledger/GetConsistencyProof": [pb.ConsistencyProofRequest(old_size=1, new_size=int(size))],
        "Ledger/GetReceipt": [pb.ReceiptRequest(index=i) for i in range(int(size))],
        "Ledger/GetEntries": [pb.EntriesRequest(start=0, end=int(size))],
        "Ledger/GetBalances": [pb.BalancesRequest(account_id=a, page_size=10) for a in ["", *accounts]],
    }
    valid = {f"/potluck.v1.{name}": [r.SerializeToString() for r in rs] for name, rs in requests.items()}
    valid["/grpc.health.v1.Health/Check"] = [health_pb2.HealthCheckRequest(service=s).SerializeToString()
                                             for s in ("", "potluck.v1.Tracker")]
    valid["/grpc.health.v1.Health/Watch"] = valid["/grpc.health.v1.Health/Check"]
    valid["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"] = [r.SerializeToString() for r in (
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="potluck.v1.Tracker"))]
    return valid


async def _fuzz(address: str, methods: list[Method], fuzzer: Fuzzer):
    """Send NUM_INPUTS calls, methods in turn, CONCURRENCY at once; count them, and collect bad answers."""
    cert = probe_certificate(address, 10.0)
    options = [("grpc.ssl_target_name_override", TLS_NAME), ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES)]  # oversized ones are the server's to refuse
    # Connections enough that none carries more than 16 calls: the server takes 32 streams per connection
    # (max_concurrent_streams) and refuses more (UNAVAILABLE, RST_STREAM), which would only be noise here.
    channels = [grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(cert), options=options)
                for _ in range(-(-CONCURRENCY // 16))]
    calls, codes, problems = Counter(), {m.path: Counter() for m in methods}, []
    slots, tasks, busy = asyncio.Semaphore(CONCURRENCY), set(), [0] * len(channels)

    async def one(line: int, method: Method, kind: str, messages: list[bytes]) -> None:
        try:
            code, details = await asyncio.wait_for(_call(channels[line], method, messages), ANSWER_TIMEOUT + 5)
        except TimeoutError:
            code, details = grpc.StatusCode.DEADLINE_EXCEEDED, "no answer (the client's own guard)"
        finally:
            busy[line] -= 1
            slots.release()
        codes[method.path][code.name] += 1
        if code in FAULTS or (details and LEAK.search(details)):
            problems.append((method.path, kind, code.name, details[:300]))

    try:
        for i in range(NUM_INPUTS):
            await slots.acquire()
            method = methods[i % len(methods)]
            count = fuzzer.rng.choice([1, 1, 2, 3]) if method.client_streaming else 1
            made = [fuzzer.message(method) for _ in range(count)]
            calls[method.path] += 1
            line = busy.index(min(busy))
            busy[line] += 1
            task = asyncio.create_task(one(line, method, made[0][0], [data for _, data in made]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        for channel in channels:
            await channel.close()
    return calls, codes, problems


async def _call(channel, method: Method, messages: list[bytes]) -> tuple[grpc.StatusCode, str]:
    """One call with identity serializers (nothing checks the bytes before the tracker); its status."""
    try:
        if not method.server_streaming:
            await channel.unary_unary(method.path)(messages[0], timeout=ANSWER_TIMEOUT)
            return grpc.StatusCode.OK, ""
        if method.client_streaming:  # both answer each message (SubmitReports, ServerReflectionInfo)
            return await _lock_step(channel.stream_stream(method.path)(timeout=ANSWER_TIMEOUT), messages)
        call = channel.unary_stream(method.path)(messages[0], timeout=ANSWER_TIMEOUT)
        answers = 0
        async for _ in call:
            answers += 1
            if answers >= STREAM_ANSWERS or method.path.endswith("/Watch"):
                call.cancel()  # it answered; a stream that would go on (Watch) is ended here
                return grpc.StatusCode.OK, ""
        return grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or ""


async def _lock_step(call, messages: list[bytes]) -> tuple[grpc.StatusCode, str]:
    """Each message written once the one before it is answered: grpc.aio's client, writing to a call the
    server has ended, makes up a status of its own ("INTERNAL: Internal error from Core"), not the server's."""
    for message in messages:
        await call.write(message)
        if await call.read() is grpc.aio.EOF:
            break
    else:
        await call.done_writing()
        while await call.read() is not grpc.aio.EOF:
            pass
    return await call.code(), await call.details() or ""


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _own_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
