"""Run as a script: a GroupProcess is SIGKILLed holding hivemind's process-shared locks, as a worker
group killed mid-step can be; then a second GroupProcess (the restarted worker) uses hivemind.

Prints "ok" if the second one got through, "stuck" if it waited on a lock its killed sibling held."""

from __future__ import annotations

import sys

from hivemind.utils.asyncio import _AsyncContextWrapper
from hivemind.utils.mpfuture import MPFuture, SharedBytes

from potluck.group_process import GroupProcess

STUCK_AFTER = 15.0


def locks() -> list:
    return [SharedBytes._lock, MPFuture._initialization_lock, MPFuture._update_lock,
            _AsyncContextWrapper.EXECUTOR_LOCK]


def hold(stop, events) -> None:
    for lock in locks():
        lock.acquire()
    events.put(("holding", None))
    stop.wait()


def use_hivemind(stop, events) -> None:
    free = [lock.acquire(timeout=STUCK_AFTER / 5) for lock in locks()]  # all four tried before it gives up
    for lock, taken in zip(locks(), free, strict=True):
        if taken:
            lock.release()
    if all(free):
        future = MPFuture()  # takes the first two itself
        future.set_result("done")
        _AsyncContextWrapper.get_process_wide_executor()
        events.put(("used", future.result()))
    else:
        events.put(("stuck on", free))


def main() -> int:
    MPFuture()  # this process has used hivemind before it forks, as the supervisor has imported it
    holder = GroupProcess(hold, name="holder").start()
    try:
        if holder.next_event(STUCK_AFTER) != ("holding", None):
            print("the holder never took the locks")
            return 1
    finally:
        holder.kill()
    restarted = GroupProcess(use_hivemind, name="restarted").start()
    try:
        event = restarted.next_event(STUCK_AFTER)
        print("ok" if event == ("used", "done") else f"stuck: {event}")
    finally:
        restarted.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
