"""Key files under a hostile local user: a symlink planted where a key is read or created, a file someone
else owns, and two starts racing to create one key. Each is refused by name, or ends with one key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from potluck.errors import KeyFileError
from potluck.keyfile import load_or_create_secret, read_secret_file, write_secret_file

pytestmark = pytest.mark.timeout(60)


def test_a_symlink_is_neither_read_nor_written_through(tmp_path):
    target = tmp_path / "attacker-chosen"
    write_secret_file(target, b"s" * 32)
    link = tmp_path / "check.key"
    link.symlink_to(target)
    with pytest.raises(KeyFileError, match="check.key: is a symbolic link"):
        read_secret_file(link)
    dangling = tmp_path / "log.key"
    dangling.symlink_to(tmp_path / "nowhere")  # creating the key would write wherever it points
    with pytest.raises(KeyFileError, match="log.key: already exists"):
        write_secret_file(dangling, b"k" * 32)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_key_file_owned_by_another_user_is_refused(tmp_path):
    path = tmp_path / "account.key"
    write_secret_file(path, b"k" * 32)
    os.chown(path, 65534, 65534)  # nobody
    with pytest.raises(KeyFileError, match="owned by uid 65534, not by this user"):
        read_secret_file(path)


RACE = """
import sys, time
from pathlib import Path
from potluck.keyfile import load_or_create_secret
start = float(sys.argv[2])
while time.time() < start:
    pass
print(load_or_create_secret(Path(sys.argv[1])).hex())
"""


def test_racing_starts_end_with_one_secret_that_all_of_them_use(tmp_path):
    import time

    path, start = tmp_path / "check.key", time.time() + 2.0
    racers = [subprocess.Popen([sys.executable, "-c", RACE, str(path), str(start)], stdout=subprocess.PIPE,
                               text=True) for _ in range(6)]
    seen = {racer.communicate(timeout=30)[0].strip() for racer in racers}
    assert seen == {load_or_create_secret(path).hex()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.key"]  # no temporary file left behind
