"""`potluck node join` as a volunteer runs it, failing for a reason we can name.

Every case runs the installed console script in a subprocess, with a private POTLUCK_HOME and a
real account key, and expects what the style guide promises: one line on stderr that says what is
wrong, exit code 1, no traceback, and nothing left running.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path

import pytest
from clikit import assert_one_line_error, potluck
from swarmkit import make_manifest
from trackerkit import RunningTracker

from potluck.identity import load_account_key

pytestmark = pytest.mark.timeout(90)

SHARD_NAME = "corpus-000"
SHARD_BYTES = b"the lead published these bytes\n" * 64


@pytest.fixture
def account_id(home) -> str:
    return load_account_key(home / "account.key").account_id


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: bound by the OS, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join(home: Path, *args: str) -> subprocess.CompletedProcess:
    return potluck(home, "node", "join", "--state-dir", str(home / "node"), *args)


def test_tracker_unreachable_at_start(home, closed_port):
    result = join(home, "--tracker", f"127.0.0.1:{closed_port}")
    assert_one_line_error(result, f"tracker 127.0.0.1:{closed_port} unreachable")


@pytest.mark.parametrize("value", ["nonsense", "127.0.0.1:0", "127.0.0.1:99999"])
def test_bad_tracker_value(home, value):
    result = join(home, "--tracker", value)
    assert_one_line_error(result, "--tracker", "HOST:PORT", repr(value))


def test_neither_tracker_nor_manifest(home):
    assert_one_line_error(join(home), "--tracker", "--manifest")


def test_manifest_signed_by_another_lead(home, account_id, tmp_path):
    other = make_manifest(tmp_path)  # signed by a fresh lead, not by the one we pin
    path = tmp_path / "swarm.manifest"
    path.write_bytes(other.envelope)
    result = join(home, "--manifest", str(path), "--lead-key", account_id)
    assert_one_line_error(result, "bad manifest signature", f"signed by {other.lead_key.hex()}",
                          f"expected lead {account_id}")


def test_tracker_serving_a_manifest_signed_by_another_lead(home, account_id, tmp_path):
    tracker = RunningTracker(tmp_path)
    try:
        result = join(home, "--tracker", tracker.address, "--lead-key", account_id)
    finally:
        tracker.stop()
    assert_one_line_error(result, "bad manifest signature", f"signed by {tracker.manifest.lead_key.hex()}")


def test_tampered_manifest_file(home, tmp_path):
    signed = make_manifest(tmp_path)
    original = b"A potluck training swarm."
    assert signed.envelope.count(original) == 1
    path = tmp_path / "swarm.manifest"
    path.write_bytes(signed.envelope.replace(original, b"A potluck trainin9 swarm."))
    result = join(home, "--manifest", str(path), "--lead-key", signed.lead_key.hex())
    assert_one_line_error(result, str(path), f"signature by {signed.lead_key.hex()} does not verify")


def test_bad_lead_key_value(home, tmp_path):
    result = join(home, "--tracker", "127.0.0.1:1", "--lead-key", "not-hex")
    assert_one_line_error(result, "--lead-key", "64 hex digits")


def _add_charlm_shard(text: str) -> str:
    shard = (f'[[datasets]]\nname = "{SHARD_NAME}"\nsha256 = "{hashlib.sha256(SHARD_BYTES).hexdigest()}"\n'
             f'size_bytes = {len(SHARD_BYTES)}\nlicense = "CC0-1.0"\nowner = "potluck tests"\n\n')
    text = text.replace('name = "synthetic"', 'name = "charlm"', 1)
    text = text.replace("[task.params]\n", "[task.params]\nd_model = 32\nn_layers = 1\nseq_len = 16\n", 1)
    return text.replace("[hivemind]\n", shard + "[hivemind]\n", 1)


@pytest.mark.parametrize(("other", "error"), [
    (SHARD_BYTES.replace(b"lead", b"LEAD"), f"expected sha256 {hashlib.sha256(SHARD_BYTES).hexdigest()}"),
    (SHARD_BYTES + b" and more", f"expected {len(SHARD_BYTES)} bytes (the manifest's size_bytes)"),
])
def test_dataset_mismatch(home, tmp_path, other, error):
    manifest = make_manifest(tmp_path, edit=_add_charlm_shard)
    assert [d.name for d in manifest.manifest.datasets] == [SHARD_NAME]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / SHARD_NAME).write_bytes(other)  # same name, other bytes
    tracker = RunningTracker(tmp_path, manifest)
    try:
        result = join(home, "--tracker", tracker.address, "--lead-key", manifest.lead_key.hex(),
                      "--data-dir", str(data_dir))
    finally:
        tracker.stop()
    assert_one_line_error(result, "dataset mismatch", str(data_dir / SHARD_NAME), error)
    assert not (home / "node" / "outbox.sqlite").exists()  # it never registered or started training


def test_device_cuda_without_cuda(home):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = join(home, "--tracker", "127.0.0.1:1", "--device", "cuda")
    assert_one_line_error(result, "--device cuda", "no CUDA device")


def test_unknown_device(home):
    assert_one_line_error(join(home, "--tracker", "127.0.0.1:1", "--device", "tpu"), "--device", "'tpu'")


def test_host_port_in_use(home):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = join(home, "--tracker", "127.0.0.1:1", "--host-maddr", f"/ip4/127.0.0.1/tcp/{port}")
    assert_one_line_error(result, f"--host-maddr /ip4/127.0.0.1/tcp/{port}", f"port {port} is in use")


def test_missing_account_key(tmp_path):
    home = tmp_path / "empty-home"
    result = join(home, "--tracker", "127.0.0.1:1")
    assert_one_line_error(result, str(home / "account.key"), "does not exist", "potluck identity create")


def test_account_key_readable_by_others(home):
    (home / "account.key").chmod(0o644)
    assert_one_line_error(join(home, "--tracker", "127.0.0.1:1"), "readable by group or others", "chmod 600")


def test_max_epochs_not_positive(home):
    assert_one_line_error(join(home, "--tracker", "127.0.0.1:1", "--max-epochs", "0"), "--max-epochs")
