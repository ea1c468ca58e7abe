"""The log's key file: created private, reloaded unchanged, and refused when unsafe or damaged."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from potluck.errors import KeyFileError
from potluck.tlog.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from potluck.tlog.note import verifier_key_text
from potluck.tracker.ledger.logkey import load_or_create_log_key

pytestmark = pytest.mark.timeout(60)

ORIGIN = "potluck.example/swarm-1"
# Go's sumdb/note test key (golang/mod sumdb/note/note_test.go): a log.key is that format.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_a_private_key_and_publishes_its_verifier_key(tmp_path: Path) -> None:
    state = tmp_path / "state" / "nested"
    key = load_or_create_log_key(state, ORIGIN)
    assert _mode(state / "log.key") == 0o600
    assert (state / "log.pub").read_text() == verifier_key_text(ORIGIN, key.verify_key) + "\n"
    assert _mode(state / "log.pub") == 0o644
    assert not [p.name for p in state.iterdir() if p.name.endswith(".tmp")]
    # What the log signs, auditors verify with log.pub alone.
    cp = Checkpoint(origin=ORIGIN, size=0, root_hash=bytes(32))
    assert verify_checkpoint(sign_checkpoint(cp, key), (state / "log.pub").read_text()) == cp


def test_reload_is_idempotent(tmp_path: Path) -> None:
    first = load_or_create_log_key(tmp_path, ORIGIN)
    key_bytes = (tmp_path / "log.key").read_bytes()
    pub_mtime = (tmp_path / "log.pub").stat().st_mtime_ns
    second = load_or_create_log_key(tmp_path, ORIGIN)
    assert bytes(second) == bytes(first)
    assert (tmp_path / "log.key").read_bytes() == key_bytes
    assert (tmp_path / "log.pub").stat().st_mtime_ns == pub_mtime


def test_key_file_is_go_signer_key_text(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    path.write_text(PETER_SKEY + "\n")
    path.chmod(0o600)
    key = load_or_create_log_key(tmp_path, "PeterNeumann")
    assert verifier_key_text("PeterNeumann", key.verify_key) == PETER_VKEY
    assert (tmp_path / "log.pub").read_text() == PETER_VKEY + "\n"


def test_refuses_a_key_readable_by_others(tmp_path: Path) -> None:
    load_or_create_log_key(tmp_path, ORIGIN)
    path = tmp_path / "log.key"
    for mode in (0o644, 0o640, 0o604, 0o660):
        path.chmod(mode)
        with pytest.raises(KeyFileError) as info:
            load_or_create_log_key(tmp_path, ORIGIN)
        message = str(info.value)
        assert str(path) in message
        assert f"mode {mode:04o}" in message
        assert f"chmod 600 {path}" in message
        assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"", "does not start with PRIVATE\\+KEY\\+"),
        (b"garbage\n", "does not start with PRIVATE\\+KEY\\+"),
        (PETER_SKEY[:28].encode(), "not of the form"),
        (PETER_SKEY[:40].encode(), "base64"),
        (PETER_SKEY[:-4].encode(), "expected a 32-byte Ed25519 key, got 29 bytes"),
        (b"\xff\xfe", "not ASCII"),
        (PETER_SKEY.replace("c74f20a3", "c74f20a4").encode(), "key id"),
        (b"x" * 5000, "does not start with PRIVATE\\+KEY\\+"),
    ],
)
def test_refuses_corrupt_or_truncated_files(tmp_path: Path, content: bytes, complaint: str) -> None:
    path = tmp_path / "log.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=complaint) as info:
        load_or_create_log_key(tmp_path, "PeterNeumann")
    assert str(path) in str(info.value)
    assert "AYEKFALVFGyN" not in str(info.value)  # never echo the secret
    assert path.read_bytes() == content  # and never replace a damaged key


def test_refuses_a_key_of_the_wrong_length(tmp_path: Path) -> None:
    import base64

    from potluck.tlog.note import key_id

    seed31 = base64.b64encode(b"\x01" + bytes(31)).decode()
    path = tmp_path / "log.key"
    path.write_text(f"PRIVATE+KEY+{ORIGIN}+{key_id(ORIGIN, bytes(31)).hex()}+{seed31}\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="expected a 32-byte Ed25519 key, got 31 bytes"):
        load_or_create_log_key(tmp_path, ORIGIN)


def test_refuses_a_key_of_another_origin(tmp_path: Path) -> None:
    load_or_create_log_key(tmp_path, ORIGIN)
    with pytest.raises(KeyFileError, match=f"log key of origin '{ORIGIN}', not 'other.example/log'"):
        load_or_create_log_key(tmp_path, "other.example/log")


def test_refuses_a_directory_in_place_of_the_key(tmp_path: Path) -> None:
    (tmp_path / "log.key").mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_or_create_log_key(tmp_path, ORIGIN)


def test_rewrites_a_log_pub_that_does_not_match(tmp_path: Path) -> None:
    key = load_or_create_log_key(tmp_path, ORIGIN)
    (tmp_path / "log.pub").write_text(PETER_VKEY + "\n")
    load_or_create_log_key(tmp_path, ORIGIN)
    assert (tmp_path / "log.pub").read_text() == verifier_key_text(ORIGIN, key.verify_key) + "\n"


def test_created_key_is_private_despite_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_log_key(tmp_path / "s", ORIGIN)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "s" / "log.key") == 0o600
    assert _mode(tmp_path / "s") == 0o700
