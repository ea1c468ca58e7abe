"""A lying tracker: every way of rewriting the log is caught, and the message names the entry and the lie.

The tracker holds the log key, so it re-signs checkpoints over whatever it serves. What catches it is
the auditor's state from an earlier run, another auditor's checkpoint, or the entries themselves.
"""

import json

import pytest
from auditkit import ACCOUNTS, build_log, inflated, stolen
from nacl.signing import SigningKey

from potluck.tlog.note import verifier_key_text

pytestmark = pytest.mark.timeout(90)


def audited(tracker, log, state, name="honest"):
    """Serve the honest log and let the auditor at `state` verify it, as a run before the lie."""
    tracker.serve(log, name)
    result = tracker.verify(state)
    assert result.exit_code == 0, result.output


def failed(result) -> str:
    assert result.exit_code == 1, result.output
    assert "audit failed" in result.stdout
    return result.stdout


def test_deleted_entry_is_named(tracker, log40, tmp_path):
    state = tmp_path / "auditor"
    audited(tracker, log40[:30], state)
    tracker.serve(log40[:17] + log40[18:], "deleted")
    out = failed(tracker.verify(state))
    assert "fork: the tracker's checkpoint of size 39 does not extend the one of size 30" in out
    assert "entry 17: deleted: the tracker now serves what was entry 18 at index 17" in out
    assert len(list((state / "evidence").iterdir())) == 1


def test_edited_entry_is_named_with_the_changed_fields(tracker, log40, tmp_path):
    state = tmp_path / "auditor"
    audited(tracker, log40[:30], state)
    tracker.serve(log40[:17] + [inflated(log40[17])] + log40[18:], "edited")
    out = failed(tracker.verify(state))
    assert "entry 17: edited: the tracker now serves other bytes at index 17" in out
    assert "grant.num_samples 64 → 6400" in out


def test_edited_entry_is_caught_on_a_first_run_by_the_replay(tracker, log40, tmp_path):
    tracker.serve(log40[:17] + [inflated(log40[17])] + log40[18:], "edited")
    out = failed(tracker.verify(tmp_path / "auditor"))
    assert "entry 17: grants credit for 6400 samples, but the signed report claims only 64" in out
    assert not (tmp_path / "auditor" / "checkpoint").exists()


def test_entry_altered_on_the_wire_is_located_by_consistency_proofs(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    tracker.service.altered[23] = inflated(log40[23])
    out = failed(tracker.verify(tmp_path / "auditor"))
    assert "do not hash to the root of the tracker's checkpoint of size 40" in out
    assert "entry 23: does not match the tracker's signed checkpoint" in out


def test_entry_dropped_on_the_wire_is_caught(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    tracker.service.dropped.add(17)
    out = failed(tracker.verify(tmp_path / "auditor"))
    # Entries travel in batches, so a short batch is caught where the answer runs out.
    assert "entry 39: the tracker's answer to entries 0..40 stopped after 39 entries" in out


def test_stolen_grant_is_caught(tracker, log40, tmp_path):
    tracker.serve(log40[:20] + [stolen(log40[20], ACCOUNTS[1])] + log40[21:], "stolen")
    out = failed(tracker.verify(tmp_path / "auditor"))
    assert "entry 20: expected the report to be signed by the credited account" in out


def test_reordered_entries_are_named(tracker, log40, tmp_path):
    state = tmp_path / "auditor"
    audited(tracker, log40[:30], state)
    swapped = list(log40)
    swapped[10], swapped[13] = swapped[13], swapped[10]
    tracker.serve(swapped, "reordered")
    out = failed(tracker.verify(state))
    assert "entries 10 and 13: reordered: the tracker now serves them swapped" in out


def test_reordered_entries_are_caught_on_a_first_run_by_sequence_numbers(tracker, log40, tmp_path):
    swapped = list(log40)
    swapped[10], swapped[13] = swapped[13], swapped[10]  # two reports of one account
    tracker.serve(swapped, "reordered")
    out = failed(tracker.verify(tmp_path / "auditor"))
    assert "entry 13: expected a report sequence above 5" in out and "got 4" in out


def test_rolled_back_log_is_caught(tracker, log40, tmp_path):
    state = tmp_path / "auditor"
    audited(tracker, log40, state)
    tracker.serve(log40[:30], "rolled-back")
    out = failed(tracker.verify(state))
    assert "rollback: the tracker's checkpoint has size 30, but this auditor already verified a checkpoint of " \
           "size 40" in out
    assert "entries 30..39: gone" in out
    [evidence] = (state / "evidence").iterdir()
    assert sorted(p.name for p in evidence.iterdir()) == ["served.checkpoint", "verified.checkpoint"]


def test_split_view_between_two_auditors_is_caught_when_they_compare(tracker, log40, tmp_path):
    other = build_log(40)  # same accounts and sequences from index 30 on, other reports
    view_a, view_b = log40, log40[:30] + other[30:]
    state_a, state_b = tmp_path / "alice", tmp_path / "bob"
    audited(tracker, view_a, state_a, "view-a")
    audited(tracker, view_b, state_b, "view-b")  # alone, each auditor sees a log that verifies

    out = failed(tracker.verify(state_b, "--compare", str(state_a / "checkpoint")))
    assert f"split view: --compare {state_a / 'checkpoint'} (size 40) and the tracker's checkpoint (size 40)" in out
    assert "entry 30: edited" in out  # alice's entries lie next to her checkpoint
    assert any(p.name.endswith("split-view") for p in (state_b / "evidence").iterdir())

    # A bare note, mailed over, without entries: still caught, at any size.
    note = tmp_path / "alice-at-35.checkpoint"
    tracker.serve(view_a[:35], "view-a-35")
    audited(tracker, view_a[:35], tmp_path / "carol", "view-a-35b")
    note.write_text((tmp_path / "carol" / "checkpoint").read_text())
    tracker.serve(view_b, "view-b-again")
    out = failed(tracker.verify(state_b, "--compare", str(note)))
    assert "(size 35) and the tracker's checkpoint (size 40) disagree" in out

    honest = tracker.verify(state_b, "--compare", str(state_b / "checkpoint"), "--json")
    assert honest.exit_code == 0 and json.loads(honest.stdout)["compared_checkpoints"] == 1


def test_same_size_split_view_against_own_state(tracker, log40, tmp_path):
    state = tmp_path / "auditor"
    audited(tracker, log40, state)
    tracker.serve(log40[:30] + build_log(40)[30:], "other-view")
    out = failed(tracker.verify(state))
    assert "split view: the tracker's checkpoint of size 40 has root" in out
    assert "entry 30: edited" in out


def test_wrong_log_key_is_refused(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    impostor = verifier_key_text("potluck.swarm/test/ledger", SigningKey(b"\x99" * 32).verify_key)
    out = failed(tracker.verify(tmp_path / "auditor", log_key=impostor))
    assert "the tracker's checkpoint does not verify: note has no signature by key potluck.swarm/test/ledger+" in out


def test_duplicate_report_is_caught(tracker, log40, tmp_path):
    tracker.serve(log40[:25] + [log40[4]] + log40[25:30], "duplicate")
    out = failed(tracker.verify(tmp_path / "auditor"))
    assert "entry 25: logs the same signed report as entry 4" in out


def test_balances_that_do_not_add_up_are_caught(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    tracker.service.extra_vested_flops = 1000
    out = failed(tracker.verify(tmp_path / "auditor"))
    assert "expected vested_flops" in out and "(recomputed from the log), the tracker says" in out


def test_damaged_local_copy_is_refused(tracker, log40, tmp_path):
    state = tmp_path / "auditor"
    audited(tracker, log40, state)
    lines = (state / "entries").read_bytes().splitlines(keepends=True)
    (state / "entries").write_bytes(b"".join(lines[:5] + [lines[6], lines[5]] + lines[7:]))
    result = tracker.verify(state)
    assert result.exit_code == 1
    assert "does not hash to the saved checkpoint's root" in result.output
