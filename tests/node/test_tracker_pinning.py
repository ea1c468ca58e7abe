"""A volunteer pointed at a tracker impostor refuses it: the lead's manifest pins the tracker's TLS certificate
and log key, so an impostor serving the genuine signed manifest (over TLS, with a certificate of its own) is
caught before the node registers, trains or trusts a single acknowledgement from it."""

from __future__ import annotations

import pytest
from clikit import assert_one_line_error, potluck
from grpckit import ServerThread
from swarmkit import make_manifest
from trackerkit import RunningTracker

from potluck.manifest import read_manifest_file
from potluck.proto import tracker_pb2 as pb
from potluck.proto.tracker_pb2_grpc import TrackerServicer
from potluck.tracker_client import TrackerClient

pytestmark = pytest.mark.timeout(120)


class Impostor(TrackerServicer):
    """A man-in-the-middle's tracker: the lead's genuine signed manifest, and a log key of its own."""

    def __init__(self, signed: bytes, log_key: str):
        self.signed, self.log_key = signed, log_key

    async def GetManifest(self, request, context):
        return pb.GetManifestResponse(signed_manifest=self.signed, log_key=self.log_key)


class Swarm:
    """The genuine tracker (its manifest pins it) and an impostor on another port serving the same manifest."""

    def __init__(self, tmp_path):
        self.manifest = make_manifest(tmp_path)
        self.genuine = RunningTracker(tmp_path, self.manifest)
        self.impostor = ServerThread(tracker_service=Impostor(self.manifest.envelope, "impostor+00000000+AAAA"))
        self.stopped = False

    def join(self, home, *args: str):
        """`potluck node join ARGS`, then both servers stopped (so that no process of the test is left)."""
        try:
            return potluck(home, "node", "join", *args)
        finally:
            self.stop()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.impostor.stop()
            self.genuine.stop()


@pytest.fixture
def swarm(tmp_path):
    swarm = Swarm(tmp_path)
    try:
        yield swarm
    finally:
        swarm.stop()


def test_the_manifest_pins_the_genuine_trackers_certificate_and_log_key(swarm):
    manifest, genuine = swarm.manifest, swarm.genuine
    with TrackerClient(genuine.address) as client:
        assert manifest.manifest.tracker_tls_sha256 == client.tls_sha256 == genuine.tracker.tls_sha256
    assert manifest.manifest.log_key == genuine.tracker.log_key


def test_an_impostor_with_the_leads_manifest_is_refused(home, swarm):
    manifest, impostor = swarm.manifest, swarm.impostor
    result = swarm.join(home, "--tracker", impostor.address, "--lead-key", manifest.lead_key.hex())
    assert_one_line_error(result, f"tracker {impostor.address} presented TLS certificate sha256:"
                          f"{impostor.certificate.sha256}", f"pins sha256:{manifest.manifest.tracker_tls_sha256}",
                          "man-in-the-middle")
    assert not (home / "node" / "outbox.sqlite").exists()  # it never registered or queued a report


def test_a_pinned_certificate_refuses_another_before_anything_is_asked(home, swarm):
    manifest, impostor = swarm.manifest, swarm.impostor
    pin = f"sha256:{manifest.manifest.tracker_tls_sha256}"
    result = swarm.join(home, "--tracker", impostor.address, "--tracker-cert", pin)
    assert_one_line_error(result, f"presented certificate sha256:{impostor.certificate.sha256}",
                          f"expected the pinned sha256:{manifest.manifest.tracker_tls_sha256}")
    assert not (home / "node" / "lead.pub").exists()  # no manifest was even read from it


def test_a_manifest_file_pointed_at_an_impostor_is_refused(home, swarm, tmp_path):
    manifest, impostor = swarm.manifest, swarm.impostor
    path = tmp_path / "swarm.manifest"
    path.write_bytes(manifest.envelope)
    assert read_manifest_file(path).manifest.tracker_tls_sha256
    result = swarm.join(home, "--manifest", str(path), "--tracker", impostor.address,
                        "--lead-key", manifest.lead_key.hex())
    assert_one_line_error(result, "expected the pinned", "man-in-the-middle")


def test_a_malformed_certificate_pin_is_one_line(home):
    assert_one_line_error(potluck(home, "node", "join", "--tracker", "127.0.0.1:1", "--tracker-cert", "abc"),
                          "--tracker-cert", "sha256:<64 hex digits>", "'abc'")
