"""`potluck audit export`: files that re-verify without the tracker, and that other auditors can compare with."""

import base64

import pytest

from potluck.tlog import leaf_hash, root_from_leaf_hashes, verify_checkpoint

pytestmark = pytest.mark.timeout(60)


def test_export_reverifies_offline(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    out = tmp_path / "export"
    result = tracker.cli("audit", "export", "--tracker", tracker.address, "--out", str(out))
    assert result.exit_code == 0, result.output
    checkpoint = verify_checkpoint((out / "checkpoint").read_text(), tracker.verifier_key)
    entries = [base64.b64decode(line, validate=True) for line in (out / "entries").read_text().splitlines()]
    assert entries == log40
    assert root_from_leaf_hashes([leaf_hash(e) for e in entries]) == checkpoint.root_hash
    assert checkpoint.size == 40

    again = tracker.cli("audit", "export", "--tracker", tracker.address, "--out", str(out))
    assert again.exit_code == 1 and "pass --force" in again.stderr
    assert tracker.cli("audit", "export", "--tracker", tracker.address, "--out", str(out), "--force").exit_code == 0

    # The export is something to compare with: an auditor of the same log finds it consistent.
    compared = tracker.verify(tmp_path / "auditor", "--compare", str(out))
    assert compared.exit_code == 0, compared.output


def test_export_refuses_entries_that_do_not_match_the_checkpoint(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    tracker.service.altered[3] = log40[4]
    result = tracker.cli("audit", "export", "--tracker", tracker.address, "--out", str(tmp_path / "export"))
    assert result.exit_code == 1
    assert "do not hash to the root of its checkpoint of size 40; nothing exported" in result.stderr
    assert not (tmp_path / "export" / "entries").exists() and not (tmp_path / "export" / "checkpoint").exists()
