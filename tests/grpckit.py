"""A real grpc.aio server on its own event-loop thread, for tests that drive it with blocking clients."""

from __future__ import annotations

import asyncio
import threading

from potluck.tracker.server import start_server


class ServerThread:
    """Runs `start_server(...)` on 127.0.0.1:0 in a background loop; `stop()` shuts it down."""

    def __init__(self, **services):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.port = self.call(start_server("127.0.0.1:0", **services))
        self.address = f"127.0.0.1:{self.port}"

    def call(self, coroutine, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.server.stop(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
