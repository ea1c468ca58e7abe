"""A volunteer for the chaos trials, in a process of its own: the node's real Outbox and Reporter.

Run as `python chaos_volunteer.py MANIFEST ADDRESS LOG_PUB DIR INTERVAL`. It registers its binding
(retrying while the tracker is away), then queues a signed report every INTERVAL seconds into
DIR/outbox.sqlite while its reporter sends them, until the file DIR/stop appears; then it waits for
its queue to drain (at most DRAIN_TIMEOUT) and exits 0 if it did. The test reads the outbox file.
"""

import sys
import threading
import time
from pathlib import Path

from swarmkit import Volunteer

from potluck.errors import TrackerError, TrackerUnreachable
from potluck.manifest import read_manifest_file
from potluck.node.outbox import Outbox
from potluck.node.reporter import Reporter
from potluck.tracker_client import TrackerClient

DRAIN_TIMEOUT = 40.0
REGISTER_TIMEOUT = 60.0


def register(client: TrackerClient, binding: bytes) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT
    while True:
        try:
            client.register(binding)
            return
        except (TrackerUnreachable, TrackerError):  # the tracker may be down this very moment
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(manifest_path: str, address: str, log_pub: str, directory: str, interval: float) -> int:
    folder = Path(directory)
    manifest = read_manifest_file(Path(manifest_path))
    volunteer = Volunteer.create(folder)
    client = TrackerClient(address, rpc_timeout=5.0)
    register(client, volunteer.binding(manifest))
    outbox = Outbox(folder / "outbox.sqlite")
    reporter = Reporter(outbox, client, log_key=Path(log_pub).read_text().strip(), rpc_timeout=5.0)
    stop = threading.Event()
    sender = threading.Thread(target=reporter.run, args=(stop,), daemon=True)
    sender.start()
    while not (folder / "stop").exists():
        sequence = outbox.next_sequence()
        outbox.put(sequence, volunteer.report(manifest, sequence))
        time.sleep(interval)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while outbox.counts().queued and time.monotonic() < deadline:
        time.sleep(0.1)
    drained = outbox.counts().queued == 0
    stop.set()
    sender.join(timeout=30)
    reporter.close()
    client.close()
    outbox.close()
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5], float(sys.argv[5])))
