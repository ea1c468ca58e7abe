"""Running the installed `potluck` console script as a volunteer would, and checking its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from proctree import descendant_pids

POTLUCK = Path(sys.executable).parent / "potluck"
RUN_TIMEOUT = 60


def potluck(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the console script as a volunteer would, tagged so that anything it leaves behind can be found."""
    tag = uuid.uuid4().hex
    env = {**os.environ, "POTLUCK_HOME": str(home), "POTLUCK_TEST_RUN": tag}
    env.pop("POTLUCK_DEBUG", None)
    env.pop("POTLUCK_LOGLEVEL", None)
    result = subprocess.run([str(POTLUCK), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env)
    result.leftovers = _processes_tagged(tag)
    return result


def _processes_tagged(tag: str) -> list[int]:
    """Processes whose environment carries `tag`: the command's descendants, even ones reparented to init."""
    needle = f"POTLUCK_TEST_RUN={tag}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, f"exit code {result.returncode}; stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert result.stdout == "", result.stdout
    assert result.leftovers == [], f"processes left running: {result.leftovers}"
    assert descendant_pids(os.getpid()) == []
    return lines[0]
