"""Real grpc.aio servers on an event-loop thread of their own, for tests that drive them with blocking clients."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc

from potluck.errors import TrackerUnreachable
from potluck.tls import new_certificate, probe_certificate
from potluck.tracker.service.server import start_server
from potluck.tracker_client import open_channel


class LoopThread:
    """An asyncio event loop running in a background thread; `call` runs a coroutine there and waits."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class ServerThread(LoopThread):
    """Runs `start_server(...)` on 127.0.0.1:0 in a background loop; `stop()` shuts it down."""

    def __init__(self, **services):
        super().__init__()
        self.certificate = new_certificate()
        self.server, self.port = self.call(start_server("127.0.0.1:0", self.certificate, **services))
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.call(self.server.stop(0.5))
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def tracker_channel(address: str, timeout: float = 60.0) -> grpc.Channel:
    """A TLS channel to the tracker at `address` (trusting the certificate it presents), once it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_channel(address, probe_certificate(address, 5.0))
        except TrackerUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
