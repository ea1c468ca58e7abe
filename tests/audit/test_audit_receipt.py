"""Receipts: `potluck credits receipt` fetches one; `potluck audit receipt` checks it offline, naming what is wrong."""

import base64
import json

import pytest
from auditkit import ACCOUNTS, stolen
from nacl.signing import SigningKey

from potluck.tlog.note import verifier_key_text

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def receipt(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    path = tmp_path / "entry5.receipt"
    fetched = tracker.cli("credits", "receipt", "--tracker", tracker.address, "--index", "5", "-o", str(path))
    assert fetched.exit_code == 0, fetched.output
    return path


def check(tracker, path, *extra, log_key=None):
    return tracker.cli("audit", "receipt", str(path), "--log-key", log_key or tracker.verifier_key, *extra)


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    return result.stderr


def test_receipt_verifies_offline_and_says_what_it_grants(tracker, receipt, log40):
    tracker.stop_server()  # offline: the tracker is gone
    result = check(tracker, receipt)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("receipt OK: entry 5 is in potluck.swarm/test/ledger at size 40: grant of ")
    assert f"64 samples) to account {ACCOUNTS[2].account_id}" in result.stdout
    summary = json.loads(check(tracker, receipt, "--json").stdout)
    assert (summary["index"], summary["kind"], summary["num_samples"]) == (5, "grant", 64)


def test_tampered_entry_in_receipt_is_named(tracker, receipt, log40):
    text = receipt.read_text()
    original = base64.b64encode(log40[5]).decode()
    receipt.write_text(text.replace(original, base64.b64encode(log40[8]).decode()))
    err = one_line_error(check(tracker, receipt))
    assert "entry 5: receipt: proof does not lead to the checkpoint root: inclusion proof for index 5" in err


def test_tampered_proof_in_receipt_is_named(tracker, receipt):
    lines = receipt.read_text().split("\n")
    assert lines[3] and lines[2] == "index 5"
    lines[3] = base64.b64encode(b"\x00" * 32).decode()
    receipt.write_text("\n".join(lines))
    err = one_line_error(check(tracker, receipt))
    assert "entry 5: receipt: proof does not lead to the checkpoint root" in err


def test_tampered_index_and_checkpoint_are_named(tracker, receipt, tmp_path):
    moved = tmp_path / "moved.receipt"
    moved.write_text(receipt.read_text().replace("index 5\n", "index 4\n"))
    assert "entry 4: receipt: proof does not lead" in one_line_error(check(tracker, moved))
    resized = tmp_path / "resized.receipt"
    resized.write_text(receipt.read_text().replace("\n40\n", "\n41\n"))
    assert "entry 5: receipt: note signature by key" in one_line_error(check(tracker, resized))


def test_receipt_under_another_key_is_refused(tracker, receipt):
    impostor = verifier_key_text("potluck.swarm/test/ledger", SigningKey(b"\x42" * 32).verify_key)
    err = one_line_error(check(tracker, receipt, log_key=impostor))
    assert "entry 5: receipt: note has no signature by key potluck.swarm/test/ledger+" in err


def test_receipt_for_a_forged_grant_is_refused(tracker, log40, tmp_path):
    tracker.serve(log40[:20] + [stolen(log40[20], ACCOUNTS[1])], "stolen")
    path = tmp_path / "stolen.receipt"
    assert tracker.cli("credits", "receipt", "--tracker", tracker.address, "--index", "20",
                       "-o", str(path)).exit_code == 0
    err = one_line_error(check(tracker, path))
    assert "entry 20: expected the report to be signed by the credited account" in err


def test_not_a_receipt(tracker, tmp_path):
    path = tmp_path / "junk"
    path.write_text("hello\n")
    assert "not a valid receipt" in one_line_error(check(tracker, path))
    assert "cannot read" in one_line_error(check(tracker, tmp_path / "missing"))
