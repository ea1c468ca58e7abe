"""A fault inside the tracker reaches the client as INTERNAL and an incident id, never as the tracker's
insides; the tracker's log holds the traceback under that id (tracker/service/incidents.py)."""

import logging
import re

import grpc
import pytest
from swarmkit import Volunteer, submit_reports
from trackerkit import registered

from potluck.proto import tracker_pb2 as pb

pytestmark = pytest.mark.timeout(60)

INCIDENT = re.compile(r"^internal error at the tracker \(incident ([0-9a-f]{12})\)$")
# What grpc's default answer carried before ("Unexpected <class 'sqlite3.OperationalError'>: no such table: ...").
INSIDES = ("<class", "Unexpected", "Traceback", "Error", "sqlite", "entries", "SELECT", "table", "/")


def _read_entries(tracker):
    return list(tracker.ledger_stub.GetEntries(pb.EntriesRequest(start=0, end=2), timeout=10))


def _read_receipt(tracker):
    return tracker.ledger_stub.GetReceipt(pb.ReceiptRequest(index=0), timeout=10)


@pytest.mark.parametrize("call", [_read_entries, _read_receipt], ids=["streaming", "unary"])
def test_a_database_fault_is_an_incident_id_for_the_client_and_a_traceback_in_the_log(tracker, tmp_path, caplog,
                                                                                     call):
    alice = registered(tracker, tmp_path)
    assert submit_reports(tracker.stub, [alice.report(tracker.manifest, 1)])[0].verdict == pb.ReportAck.ACCEPTED
    store = tracker.tracker.ledger.store
    with store.lock:  # the table goes away underneath the tracker, as a damaged or replaced database would
        store.db.execute("ALTER TABLE entries RENAME TO elsewhere")
    try:
        with caplog.at_level(logging.ERROR, logger="potluck.tracker.service.incidents"), \
                pytest.raises(grpc.RpcError) as raised:
            call(tracker)
    finally:
        with store.lock:
            store.db.execute("ALTER TABLE elsewhere RENAME TO entries")
    details = raised.value.details()
    assert raised.value.code() == grpc.StatusCode.INTERNAL, details
    assert (match := INCIDENT.match(details)), details
    assert not [word for word in INSIDES if word in details], details
    [record] = [r for r in caplog.records if match.group(1) in r.getMessage()]
    assert record.exc_info is not None and "no such table: entries" in caplog.text
    assert "Traceback" in caplog.text and f"incident {match.group(1)}" in caplog.text
    call(tracker)  # the tracker serves on once its database is whole again


def test_a_request_that_does_not_parse_is_refused_by_name_not_by_parser(tracker):
    for method in ("/potluck.v1.Tracker/Register", "/grpc.health.v1.Health/Check"):
        with pytest.raises(grpc.RpcError) as raised:
            tracker.channel.unary_unary(method)(b"\xff\xff\xff", timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details().startswith("the request is not a valid "), raised.value.details()
        assert "DecodeError" not in raised.value.details() and "<class" not in raised.value.details()
    with pytest.raises(grpc.RpcError) as raised:  # the same on a stream, for the message that does not parse
        list(tracker.channel.stream_stream("/potluck.v1.Tracker/SubmitReports")(iter([b"", b"\xff"]), timeout=10))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "potluck.v1.SubmitReportsRequest" in raised.value.details()


def test_a_refused_commit_is_unavailable_with_the_databases_reason_only(tracker, tmp_path):
    """A temporary fault, said as one (the caller sends again): the reason, not the driver's exception."""
    store = tracker.tracker.ledger.store
    with store.lock:  # the database refuses the next commit, as a full disk would
        store.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON entries BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    volunteer = Volunteer.create(tmp_path)
    request = pb.RegisterRequest(binding=volunteer.binding(tracker.manifest))
    with pytest.raises(grpc.RpcError) as raised:
        tracker.stub.Register(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "the ledger could not commit (disk full); register again"
    with store.lock:
        store.db.execute("DROP TRIGGER refuse")
    assert tracker.stub.Register(request, timeout=10).index == 0
