"""Account key files: created 0600, refused when unsafe or damaged, with one line naming the file."""

import os
import stat

import pytest

from potluck.errors import KeyFileError
from potluck.identity import KEY_FILE_HEADER, create_account_key, load_account_key

pytestmark = pytest.mark.timeout(30)


def test_created_key_is_private_and_reloads(tmp_path):
    path = tmp_path / "sub" / "account.key"
    key = create_account_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key.account_id) == 64 and key.account_id == key.account_id.lower()
    assert bytes.fromhex(key.account_id) == key.public_key
    assert load_account_key(path).account_id == key.account_id


def test_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "account.key"
    first = create_account_key(path)
    with pytest.raises(KeyFileError, match="already exists"):
        create_account_key(path)
    assert load_account_key(path).account_id == first.account_id
    second = create_account_key(path, force=True)
    assert second.account_id != first.account_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _write(path, text, mode=0o600):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(
    ("content", "mode", "problem"),
    [
        (f"{KEY_FILE_HEADER}\n{'ab' * 32}\n", 0o644, "readable by group or others"),
        (f"{KEY_FILE_HEADER}\n{'ab' * 32}\n", 0o640, "readable by group or others"),
        (f"{KEY_FILE_HEADER}\n{'ab' * 32}\n", 0o604, "readable by group or others"),
        (f"{KEY_FILE_HEADER}\n{'ab' * 20}\n", 0o600, "expected a 32-byte key, got 20 bytes"),
        (f"{KEY_FILE_HEADER}\n", 0o600, "expected 2 lines, got 1"),
        (f"{KEY_FILE_HEADER}\n{'ab' * 32}"[:49], 0o600, "expected a 32-byte key, got 13 bytes"),
        (f"{KEY_FILE_HEADER}\nnot-hex-at-all\n", 0o600, "not hex"),
        ("something else\n", 0o600, "expected first line"),
        ("", 0o600, "an empty file"),
        (b"\xff\xfe\x00garbage", 0o600, "not text"),
    ],
)
def test_bad_key_files_are_named_and_explained(tmp_path, content, mode, problem):
    path = _write(tmp_path / "account.key", content, mode)
    with pytest.raises(KeyFileError) as err:
        load_account_key(path)
    assert str(path) in str(err.value) and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_key_file_says_how_to_make_one(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist.*potluck identity create"):
        load_account_key(tmp_path / "nope.key")


def test_directory_is_not_a_key_file(tmp_path):
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_account_key(tmp_path)
