"""Bad input to the auditor's commands: one line saying what is wrong, exit code 1, never a traceback."""

import socket

import pytest
from typer.testing import CliRunner

from potluck.cli import app

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()


def one_line_error(args) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), \
        result.output
    return result.stderr


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracker(closed_port, tracker, tmp_path):
    address = f"127.0.0.1:{closed_port}"
    key = tracker.verifier_key
    for args in (["audit", "verify", "--tracker", address, "--log-key", key, "--state-dir", str(tmp_path / "s")],
                 ["audit", "export", "--tracker", address, "--out", str(tmp_path / "e")],
                 ["credits", "receipt", "--tracker", address, "--index", "0", "-o", str(tmp_path / "r")]):
        err = one_line_error([*args, "--timeout", "5"])
        assert err.startswith(f"error: tracker {address} unreachable: "), err
    assert not (tmp_path / "s" / "checkpoint").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize(("log_key", "reason"), [
    ("nonsense", "neither a verifier key (origin+keyid+base64) nor a file"),
    ("origin+zz+AAAA", "key id 'zz' is not 8 lowercase hex digits"),
    ("potluck.swarm/test/ledger+00000000+AcpgsTsH6b3vbRnmrZu4D3SN1ylZvqKXhC55Jn8kOR0k",
     "key id is 00000000, but name and key give"),
])
def test_malformed_log_key(tracker, tmp_path, log_key, reason):
    err = one_line_error(["audit", "verify", "--tracker", tracker.address, "--log-key", log_key,
                          "--state-dir", str(tmp_path / "s")])
    assert "--log-key" in err and reason in err


def test_log_key_file_with_junk(tracker, tmp_path):
    path = tmp_path / "log.pub"
    path.write_text("not a key at all\n")
    err = one_line_error(["audit", "receipt", str(tmp_path / "r"), "--log-key", str(path)])
    assert f"--log-key {path}: verifier key 'not a key at all' is not of the form" in err


def test_compare_file_that_is_not_a_checkpoint(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    junk = tmp_path / "junk.checkpoint"
    junk.write_text("this is not a signed note\n")
    err = one_line_error(["audit", "verify", "--tracker", tracker.address, "--log-key", tracker.verifier_key,
                          "--state-dir", str(tmp_path / "s"), "--compare", str(junk)])
    assert f"--compare {junk}: not a checkpoint signed by the log key: malformed note" in err
    err = one_line_error(["audit", "verify", "--tracker", tracker.address, "--log-key", tracker.verifier_key,
                          "--state-dir", str(tmp_path / "s"), "--compare", str(tmp_path / "missing")])
    assert "cannot read" in err


def test_bad_tracker_address(tracker, tmp_path):
    err = one_line_error(["audit", "verify", "--tracker", "localhost", "--log-key", tracker.verifier_key,
                          "--state-dir", str(tmp_path / "s")])
    assert "--tracker: must be HOST:PORT with a port from 1 to 65535 (got 'localhost')" in err


def test_receipt_index_beyond_the_log(tracker, log40, tmp_path):
    tracker.serve(log40, "honest")
    err = one_line_error(["credits", "receipt", "--tracker", tracker.address, "--index", "40",
                          "-o", str(tmp_path / "r")])
    assert "GetReceipt failed (OUT_OF_RANGE): no entry 40 (the log has 40)" in err
