"""One log key, one history, one writer: the tracker refuses to start where it would fork its log.

The log key signs checkpoints; a tracker that opened a restored backup, or another `--db`, would sign
a checkpoint contradicting one it signed before (auditors call that a fork, and the lead cannot take it
back). Two trackers on one database or one state dir would each sign their own history. Each refusal is
one line naming its cause.
"""

import shutil
from pathlib import Path

import pytest
from swarmkit import make_manifest
from trackerkit import RunningTracker, registered

from potluck.errors import PotluckError

pytestmark = pytest.mark.timeout(60)


def grow(tmp_path: Path, manifest, num_volunteers: int, **where) -> int:
    """Start a tracker, log one binding per volunteer, sign a checkpoint over them, stop; return the size."""
    tracker = RunningTracker(tmp_path, manifest, **where)
    try:
        for _ in range(num_volunteers):
            registered(tracker, tmp_path)
        tracker.tracker.ledger.checkpoint()
        return tracker.tracker.ledger.size
    finally:
        tracker.stop()


def refusal(tmp_path: Path, manifest, **where) -> str:
    with pytest.raises(PotluckError) as refused:
        RunningTracker(tmp_path, manifest, **where).stop()
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_restored_backup_is_refused(tmp_path):
    manifest = make_manifest(tmp_path)
    db = tmp_path / "tracker" / "ledger.sqlite"
    assert grow(tmp_path, manifest, 1) == 1
    shutil.copy(db, tmp_path / "backup.sqlite")  # the tracker is stopped: the file holds every commit
    assert grow(tmp_path, manifest, 2) == 3
    shutil.copy(tmp_path / "backup.sqlite", db)
    message = refusal(tmp_path, manifest)
    assert "holds 1 entries but this log key already signed a checkpoint of size 3" in message
    assert "refusing to fork the log" in message


def test_another_database_for_the_same_log_key_is_refused(tmp_path):
    manifest = make_manifest(tmp_path)
    assert grow(tmp_path, manifest, 2) == 2
    message = refusal(tmp_path, manifest, db=str(tmp_path / "other.sqlite"))
    assert "holds 0 entries but this log key already signed a checkpoint of size 2" in message
    # Another database that grew a history of its own under the same key: as long, but another root.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("log.key", "tls.pem"):  # the keys, without the mark
        shutil.copy(tmp_path / "tracker" / name, elsewhere / name)
    assert grow(tmp_path, manifest, 2, state_dir=elsewhere) == 2
    message = refusal(tmp_path, manifest, db=str(elsewhere / "ledger.sqlite"))
    assert "at size 2, but this log key already signed root" in message
    assert "another database's history; refusing to fork the log" in message


def test_two_trackers_on_one_database_or_one_state_dir_are_refused(tmp_path):
    manifest = make_manifest(tmp_path, pinned=False)  # served from state dirs of their own
    db = str(tmp_path / "shared.sqlite")
    first = RunningTracker(tmp_path, manifest, state_dir=tmp_path / "one", db=db)
    try:
        registered(first, tmp_path)
        message = refusal(tmp_path, manifest, state_dir=tmp_path / "two", db=db)
        assert message.startswith("another tracker holds the ledger database") and db in message
        message = refusal(tmp_path, manifest, state_dir=tmp_path / "one", db=str(tmp_path / "own.sqlite"))
        assert message.startswith("another tracker holds the state directory") and str(tmp_path / "one") in message
    finally:
        first.stop()
    # Stopped, it lets go of both: the next tracker on them starts.
    RunningTracker(tmp_path, manifest, state_dir=tmp_path / "one", db=db).stop()
