"""The process tree below a pid, read from /proc: how tests prove nothing was left running."""

from __future__ import annotations

import os
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (no process names involved)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return children


def descendant_pids(pid: int) -> list[int]:
    """Every living process below `pid` in the process tree."""
    found, frontier = [], [pid]
    while frontier:
        for child in child_pids(frontier.pop()):
            found.append(child)
            frontier.append(child)
    return found


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None once it is reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def worker_pids(pid: int) -> list[int]:
    """Children of `pid` that lead their own process group (a node's training worker, say)."""
    found = []
    for child in child_pids(pid):
        try:
            if os.getpgid(child) == child:
                found.append(child)
        except ProcessLookupError:
            continue
    return found
