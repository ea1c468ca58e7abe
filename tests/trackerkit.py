"""A real tracker on 127.0.0.1, run on an event-loop thread of its own, for tests with blocking clients."""

from __future__ import annotations

from pathlib import Path

from grpckit import LoopThread, tracker_channel
from swarmkit import Volunteer, make_manifest

from potluck.manifest import SignedManifest
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import LedgerStub, TrackerStub
from potluck.tracker.tracker import Tracker, TrackerConfig


class RunningTracker:
    """`Tracker.start` on `host`:`port` (0 picks one), with stubs for both services."""

    def __init__(self, tmp_path: Path, manifest: SignedManifest | None = None, *, port: int = 0,
                 verify: bool = False, state_dir: Path | None = None, db: str | None = None, host: str = "127.0.0.1"):
        self.manifest = manifest or make_manifest(tmp_path)
        state_dir = state_dir or tmp_path / "tracker"
        self.config = TrackerConfig(state_dir=state_dir, db=db or str(state_dir / "ledger.sqlite"),
                                    listen=f"{host}:{port}", verify=verify)
        self.loop = LoopThread()
        try:
            self.tracker = self.loop.call(Tracker.start(self.manifest, self.config))
        except BaseException:
            self.loop.close()
            raise
        self.port = self.tracker.port
        self.address = f"127.0.0.1:{self.port}"  # a wildcard `host` is reached on loopback
        self.channel = tracker_channel(self.address)
        self.stub, self.ledger_stub = TrackerStub(self.channel), LedgerStub(self.channel)

    def stop(self) -> None:
        if self.loop.loop.is_closed():  # stopped already (a test's `finally` after it stopped this one itself)
            return
        self.channel.close()
        self.loop.call(self.tracker.stop(0.5))
        self.loop.close()


def registered(tracker: RunningTracker, tmp_path: Path) -> Volunteer:
    """A new volunteer whose account-PeerID binding the tracker has taken."""
    volunteer = Volunteer.create(tmp_path)
    tracker.stub.Register(pb.RegisterRequest(binding=volunteer.binding(tracker.manifest)), timeout=10)
    return volunteer
