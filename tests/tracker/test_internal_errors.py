"""A tracker that fails unexpectedly tells the client so and nothing of why (grpc's default answer names
the exception and its message: SQL, paths, the ledger's state), logs the details, and stays up."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from swarmkit import Volunteer

from potluck.proto import tracker_pb2 as pb

pytestmark = pytest.mark.timeout(60)


def test_an_unexpected_failure_answers_internal_and_shows_no_internals(tracker, tmp_path, caplog):
    volunteer = Volunteer.create(tmp_path)
    tracker.stub.Register(pb.RegisterRequest(binding=volunteer.binding(tracker.manifest)), timeout=10)
    tracker.tracker.ledger.store.db.close()  # the database goes away under the tracker: a real failure
    with pytest.raises(grpc.RpcError) as err:
        list(tracker.ledger_stub.GetEntries(pb.EntriesRequest(start=0, end=1), timeout=10))
    details = err.value.details()
    assert err.value.code() == grpc.StatusCode.INTERNAL, (err.value.code(), details)
    assert "incident" in details
    for internal in ("Unexpected", "sqlite", "closed", "Error", str(tmp_path)):
        assert internal not in details, details
    assert "closed database" in caplog.text  # the lead's log has it
    health = health_pb2_grpc.HealthStub(tracker.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    answer = tracker.stub.GetManifest(pb.GetManifestRequest(), timeout=10)  # and it still answers
    assert answer.signed_manifest == tracker.manifest.envelope
