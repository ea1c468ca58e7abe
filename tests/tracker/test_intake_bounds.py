"""What a report costs the tracker before it is trusted, and what one stream or one account can take of it.

Threat (issue 14, measured by a red team): every attestation signature of a report was checked
before its account's binding and rate; one queue served every stream; registration was unlimited.
"""

import asyncio

import pytest
from swarmkit import Volunteer, submit_reports
from trackerkit import registered

from potluck.attestations import sign_attestation
from potluck.identity import AccountKey
from potluck.proto import tracker_pb2 as pb
from potluck.proto.envelope_pb2 import SignedEnvelope
from potluck.proto.report_pb2 import AveragingRound
from potluck.proto.wire import MAX_ATTESTATIONS_PER_REPORT
from potluck.tracker.intake.lanes import Lane, Lanes, QueueFull

pytestmark = pytest.mark.timeout(60)


def with_attestations(tracker, volunteer, sequence, count):
    carried = [SignedEnvelope.FromString(sign_attestation(AccountKey.generate(), tracker.manifest.origin, 0,
                                                          f"QmGroupmate{i}")) for i in range(count)]
    return volunteer.report(tracker.manifest, sequence, averaging=AveragingRound(succeeded=True, attestations=carried))


def forged(envelope: bytes) -> bytes:
    sealed = SignedEnvelope.FromString(envelope)
    sealed.signature = bytes(64)
    return sealed.SerializeToString(deterministic=True)


def attestations_read(tracker) -> int:
    return tracker.tracker.service.submissions.opening.attestations_read


def test_a_report_of_an_unregistered_account_is_refused_before_any_signature(tracker, tmp_path):
    stranger = Volunteer.create(tmp_path)  # self-made, never registered
    report = forged(with_attestations(tracker, stranger, 1, MAX_ATTESTATIONS_PER_REPORT))
    [ack] = submit_reports(tracker.stub, [report])
    # Not "signature does not verify": no signature of it was checked, nor any of its 64 attestations.
    assert (ack.code, ack.verdict) == ("FAILED_PRECONDITION", pb.ReportAck.REJECTED), ack
    assert "has no registered peer" in ack.reason
    assert attestations_read(tracker) == 0


def test_attestations_are_read_only_for_admitted_reports(tracker, tmp_path):
    alice = registered(tracker, tmp_path)
    [first] = submit_reports(tracker.stub, [with_attestations(tracker, alice, 1, 3)])
    assert first.verdict == pb.ReportAck.ACCEPTED and attestations_read(tracker) == 3
    # A replay (refused at admission, as a report over its account's rate is) gets none of its 40 read.
    [replay] = submit_reports(tracker.stub, [with_attestations(tracker, alice, 1, 40)])
    assert replay.code == "ALREADY_EXISTS" and attestations_read(tracker) == 3


def test_too_many_attestations_are_refused_before_the_signature(tracker, tmp_path):
    alice = registered(tracker, tmp_path)
    report = forged(with_attestations(tracker, alice, 1, MAX_ATTESTATIONS_PER_REPORT + 1))
    [ack] = submit_reports(tracker.stub, [report])
    assert ack.code == "INVALID_ARGUMENT" and f"more than {MAX_ATTESTATIONS_PER_REPORT}" in ack.reason, ack


def test_each_waiting_stream_gets_a_turn_in_every_batch_and_the_queue_is_bounded():
    async def scenario():
        lanes, flood, honest = Lanes(max_bytes=45_000), Lane(), Lane()
        loop = asyncio.get_running_loop()
        for _ in range(5):
            lanes.put(flood, ([b"x" * 1000] * 8, loop.create_future()))
        lanes.put(honest, ([b"mine"], loop.create_future()))
        first = await lanes.take(max_reports=10)
        assert [len(reports) for reports, _ in first] == [8, 1, 8]  # the honest message in the first batch
        with pytest.raises(QueueFull):  # the flooding stream has messages waiting: it may not add more
            for _ in range(3):
                lanes.put(flood, ([b"x" * 1000] * 8, loop.create_future()))
        lanes.put(Lane(), ([b"another volunteer"], loop.create_future()))  # a stream with nothing waiting may

    asyncio.run(scenario())


def test_a_caller_with_many_streams_gets_one_turn_per_round_as_one_with_a_single_stream():
    # Threat: turns per stream gave a client opening 200 streams 200 turns to a volunteer's one.
    async def scenario():
        lanes = Lanes()
        loop = asyncio.get_running_loop()
        flood = [Lane("203.0.113.7") for _ in range(200)]
        for lane in flood:
            lanes.put(lane, ([b"junk"], loop.create_future()))
        honest = Lane("198.51.100.2")
        for _ in range(3):
            lanes.put(honest, ([b"mine"], loop.create_future()))
        taken = await lanes.take(max_reports=6)
        assert [reports for reports, _ in taken] == [[b"junk"], [b"mine"]] * 3
        # The flood's streams are each served in turn among themselves, and nothing is lost.
        rest = await lanes.take(max_reports=1000)
        assert len(rest) == 197 and lanes.queued_bytes == 0 and not lanes.turns and not lanes.waiting

    asyncio.run(scenario())
