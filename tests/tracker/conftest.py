"""A real tracker on 127.0.0.1 for each test, run on an event-loop thread of its own."""

from __future__ import annotations

import grpc
import pytest
from grpckit import LoopThread
from swarmkit import make_manifest

from potluck.proto.tracker_pb2_grpc import LedgerStub, TrackerStub
from potluck.tracker.app import Tracker, TrackerConfig


class RunningTracker:
    def __init__(self, tmp_path, manifest=None):
        self.manifest = manifest or make_manifest(tmp_path)
        self.config = TrackerConfig(state_dir=tmp_path / "tracker", db=str(tmp_path / "tracker" / "ledger.sqlite"),
                                    listen="127.0.0.1:0")
        self.loop = LoopThread()
        self.tracker = self.loop.call(Tracker.start(self.manifest, self.config))
        self.address = f"127.0.0.1:{self.tracker.port}"
        self.channel = grpc.insecure_channel(self.address)
        self.stub, self.ledger_stub = TrackerStub(self.channel), LedgerStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self.loop.call(self.tracker.stop(0.5))
        self.loop.close()


@pytest.fixture
def tracker(tmp_path):
    running = RunningTracker(tmp_path)
    yield running
    running.stop()
