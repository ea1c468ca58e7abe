"""A hostile tracker cannot grow the auditor's memory: its answers to GetEntries are bounded in entries
asked for, in bytes per entry and in bytes held per call (potluck/tracker_client.py)."""

import pytest

from potluck import tracker_client
from potluck.proto.wire import MAX_ENTRY_BYTES
from potluck.tracker.service import ledger_service

pytestmark = pytest.mark.timeout(60)


def _one_line(result, reason: str) -> str:
    assert result.exit_code == 1, result.output
    [line] = [line for line in result.stdout.splitlines() if reason in line]
    return line


def test_entries_without_end_stop_the_auditor_with_one_line(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    tracker.service.endless = True
    result = tracker.verify(tmp_path / "auditor")
    line = _one_line(result, "the tracker sent more than the 40 entries asked for")
    assert "entries 0..40" in line, line
    # The auditor stopped reading at the first batch too many; what the server had pushed meanwhile is
    # what grpc's flow control lets through, not the stream's (endless) length.
    assert 1 <= tracker.service.batches_past_end < 100, tracker.service.batches_past_end
    assert not (tmp_path / "auditor" / "checkpoint").exists()


def test_an_entry_larger_than_any_log_holds_stops_the_auditor_with_one_line(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    tracker.service.altered[7] = b"\x00" * (MAX_ENTRY_BYTES + 1)
    result = tracker.verify(tmp_path / "auditor")
    _one_line(result, f"entry 7: the tracker sent {MAX_ENTRY_BYTES + 1} bytes, more than the {MAX_ENTRY_BYTES}")


def test_a_log_larger_than_one_chunk_is_read_in_several_calls(tracker, log40, tmp_path, monkeypatch):
    """Past MAX_CHUNK_BYTES held, the rest comes by calls of their own: a long honest log still verifies."""
    monkeypatch.setattr(ledger_service, "ENTRIES_PER_BATCH", 2)  # the (in-process) server's batches: 2 entries
    monkeypatch.setattr(tracker_client, "MAX_CHUNK_BYTES", 4 * max(map(len, log40)))  # a chunk: 4 to 5 entries
    tracker.serve(log40, "honest")
    result = tracker.verify(tmp_path / "auditor")
    assert result.exit_code == 0, result.output
    assert tracker.service.calls >= 8, tracker.service.calls
