"""Run as a script: fork GroupProcess children (as the node forks its training worker) while this
process's threads keep gRPC calls in flight (as the node's reporter does), and print each child's exit
status. `potluck` is imported first, as in every potluck command.

Before the fix, gRPC's fork handlers (on by default) logged "skipping fork() handlers" at each fork and
about 1 child in 75 died of SIGSEGV in a gRPC thread, doing nothing."""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from concurrent import futures

import potluck  # noqa: F401  (before grpc, as in every potluck process)

# isort: split
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from potluck.group_process import GroupProcess


def idle(stop, events) -> None:
    time.sleep(0.1)


def main(children: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

    def call_forever() -> None:
        while True:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5)

    for _ in range(3):
        threading.Thread(target=call_forever, daemon=True).start()
    time.sleep(0.5)  # the calls are under way
    codes = collections.Counter()
    for _ in range(children):
        child = GroupProcess(idle, name="child").start()
        child.wait_exited(30)
        codes[child.exitcode] += 1
        child.kill()
    print(dict(codes), flush=True)
    os._exit(0)  # the callers are still calling


if __name__ == "__main__":
    main(int(sys.argv[1]))
