"""The checked-in stubs must be exactly what `make proto` generates from the .proto files."""

import filecmp

import pytest

from potluck.proto import generate

pytestmark = pytest.mark.timeout(60)


def test_stubs_are_fresh(tmp_path):
    produced = {p.name for p in generate.generate(tmp_path)}
    checked_in = {p.name for p in generate.PROTO_DIR.iterdir() if p.name.endswith(generate.GENERATED_SUFFIXES)}
    assert produced == checked_in, "stub files differ from what `make proto` writes; run `make proto`"
    stale = [name for name in sorted(produced) if not filecmp.cmp(tmp_path / name, generate.PROTO_DIR / name,
                                                                  shallow=False)]
    assert not stale, f"stale generated stubs {stale}: run `make proto` and commit the result"


def test_stubs_import_under_the_potluck_namespace():
    from potluck.proto import report_pb2, tracker_pb2_grpc

    assert report_pb2.DESCRIPTOR.name == "potluck/proto/report.proto"
    assert report_pb2.DESCRIPTOR.package == "potluck.v1"
    assert hasattr(tracker_pb2_grpc, "TrackerStub") and hasattr(tracker_pb2_grpc, "LedgerStub")


def test_stubs_coexist_with_hivemind_protos():
    import hivemind.proto.dht_pb2  # noqa: F401  (flat file names must not collide with ours)

    from potluck.proto import envelope_pb2, ledger_pb2, manifest_pb2  # noqa: F401
