"""A child process that leads its own process group, so that stopping it stops everything it started.

hivemind peers fork a DHT process, which starts p2pd, which serve averagers: after a plain kill
they live on and keep advertising. A `GroupProcess` is forked (hivemind objects are then created
in its main thread), leads a process group of its own (so a terminal's Ctrl-C reaches only its
parent, which decides), kills its whole group if its parent disappears, and is stopped with one
`killpg`, aimed only at our processes: the group is killed before the leader is reaped, while
its id cannot have been reused.

A child also gets fresh copies of the multiprocessing locks hivemind makes at import. Every process
forked after that import shares them; a worker group SIGKILLed while one of its processes held one
(hivemind takes them for every MPFuture) left each restarted worker waiting on it forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable

PARENT_POLL_INTERVAL = 0.5


class GroupProcess:
    """Runs `target(stop, events, *args)` in a forked child that leads its own process group.

    `stop` is a `StopRequests` (a `threading.Event`) in the child, set when the parent asks it to stop
    (with SIGTERM: a shared multiprocessing Event would deadlock the parent if the child were killed
    holding its lock), and counting the requests, so a child can stop in steps; `events` is a queue to
    the parent, of typed messages (dataclasses) the two agree on.
    """

    def __init__(self, target: Callable, *args, name: str):
        context = multiprocessing.get_context("fork")
        self.events = context.Queue()
        self.process = context.Process(target=_child_main, args=(target, self.events, os.getpid(), args), name=name,
                                       daemon=False)
        self._group_killed = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def exitcode(self) -> int | None:
        """The child's exit status (negative: the signal that ended it), None while it runs.

        Read without reaping it: a reaped leader's group id could be handed to a new process, so
        `kill` could no longer take its group down safely. Only `kill` reaps it.
        """
        if self.process.pid is None:
            return None
        if self._group_killed:
            return self.process.exitcode
        try:
            found = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped by someone else after all
            return self.process.exitcode
        if found is None:
            return None
        return found.si_status if found.si_code == os.CLD_EXITED else -found.si_status

    def start(self) -> GroupProcess:
        self.process.start()
        with contextlib.suppress(PermissionError, ProcessLookupError):
            os.setpgid(self.process.pid, self.process.pid)  # the child does it too; whichever runs first wins
        return self

    def next_event(self, timeout: float):
        """The next event the child sent, or None if none came within `timeout`."""
        try:
            return self.events.get(timeout=timeout)
        except (queue.Empty, OSError, ValueError):
            return None

    def exited(self) -> bool:
        """Whether the child has exited, without reaping it (so its group id stays ours)."""
        if self.process.pid is None:
            return False
        if self._group_killed:
            return True
        try:
            return os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def request_stop(self) -> None:
        if self.process.pid is not None and not self.exited():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)

    def wait_exited(self, timeout: float, on_event: Callable | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while not self.exited() and time.monotonic() < deadline:
            event = self.next_event(0.2)
            if event is not None and on_event is not None:
                on_event(event)
        return self.exited()

    def kill(self) -> None:
        """SIGKILL the child's whole process group, then reap the child.

        Also when the child died on its own: its own children (hivemind's DHT, p2pd) may live on in
        its group, which lasts while it is an unreaped zombie or any of them lives.
        """
        if self.process.pid is None or self._group_killed:
            return  # never started, or its group was killed (and it was reaped) before
        self._group_killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(timeout=10)

    def stop(self, timeout: float, on_event: Callable | None = None) -> None:
        """Ask the child to stop, give it `timeout` seconds, then kill whatever is left of its group."""
        self.request_stop()
        self.wait_exited(timeout, on_event)
        self.kill()


class StopRequests(threading.Event):
    """Set by the parent's first request to stop; `count` says how many it has sent."""

    count = 0

    def request(self) -> None:
        self.count += 1
        self.set()

    def wait_for_another(self, timeout: float) -> bool:
        """Wait until the parent asks once more than it had by now; False after `timeout` seconds."""
        seen, deadline = self.count, time.monotonic() + timeout
        while self.count == seen and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.count != seen


def _child_main(target: Callable, events, parent_pid: int, args: tuple) -> None:
    os.setpgid(0, 0)
    stop = StopRequests()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, lambda *_: stop.request())
    # Processes forked from here (hivemind's DHT, averagers) would inherit that handler and survive
    # hivemind's terminate(); multiprocessing's exit then joins them forever, and we never exit.
    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    threading.Thread(target=_die_with_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()
    _fresh_hivemind_locks()
    target(stop, events, *args)


def _fresh_hivemind_locks() -> None:
    """Replace the locks hivemind (1.1.12) shares with every process forked after its import."""
    mpfuture, aio = sys.modules.get("hivemind.utils.mpfuture"), sys.modules.get("hivemind.utils.asyncio")
    if mpfuture is not None:
        mpfuture.MPFuture.reset_backend()  # hivemind's own reset: the two MPFuture locks and SharedBytes's
    if aio is not None:
        aio._AsyncContextWrapper.EXECUTOR_LOCK = multiprocessing.get_context("fork").Lock()


def _die_with_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os.killpg(0, signal.SIGKILL)
        time.sleep(PARENT_POLL_INTERVAL)
