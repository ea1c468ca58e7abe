"""Messages of reports waiting for the pump: one lane per stream, taken in turn by caller, with a bound on them all.

Threat: with one queue for every stream, a client on a few streams that sends as fast as it can
fills it, and each honest volunteer's report waits behind all of that (measured: 3 honest volunteers'
reports logged fell to 0.43 of their rate, the tracker's memory from 0.3 to 1.2 GB, under 4 streams
of 2 MiB messages). Here the pump takes one message from each waiting stream in turn, so a stream
gets its share of every batch however much others have waiting; and when MAX_QUEUED_BYTES are
waiting, a stream that already has a message waiting is refused (RESOURCE_EXHAUSTED) rather than
queue more. A stream with nothing waiting may always queue one message, so a volunteer's report is
never refused for the flood's sake; how many streams there are is bounded by the server's
`maximum_concurrent_rpcs` (tracker/service/server.py).

Turns go to callers first (a lane's `source`: the caller's network), then to that caller's streams: a
client that opens 200 streams gets one turn in each round, as a volunteer with one stream does, not 200.
"""

from __future__ import annotations

import asyncio
from collections import deque

from potluck.errors import PotluckError

MAX_QUEUED_BYTES = 64 * 1024 * 1024  # report bytes waiting for the pump, every stream's together
MAX_TAKEN_BYTES = 16 * 1024 * 1024  # report bytes the pump takes at once (sent to the workers together)

Message = tuple[list[bytes], asyncio.Future]  # a message's reports, and the future of their acks


class QueueFull(PotluckError):
    """The tracker has MAX_QUEUED_BYTES of reports waiting, and this stream already has some of them."""


class Lane:
    """One stream's messages, in the order they came; `source` is who calls (streams of one share turns)."""

    def __init__(self, source: str = "") -> None:
        self.source = source
        self.messages: deque[tuple[Message, int]] = deque()  # each with its size in bytes


class Lanes:
    def __init__(self, max_bytes: int = MAX_QUEUED_BYTES):
        self.max_bytes, self.queued_bytes = max_bytes, 0
        self.turns: deque[deque[Lane]] = deque()  # per source with messages waiting, its lanes, in serving order
        self.waiting: dict[str, deque[Lane]] = {}  # the same deques, by source
        self.ready = asyncio.Event()

    def put(self, lane: Lane, message: Message) -> None:
        size = sum(map(len, message[0]))
        if lane.messages and self.queued_bytes + size > self.max_bytes:
            raise QueueFull(f"the tracker has {self.queued_bytes // 2**20} MiB of reports waiting; this stream's "
                            "next message must wait for its last: retry later")
        if not lane.messages:
            self._wait_turn(lane)
        lane.messages.append((message, size))
        self.queued_bytes += size
        self.ready.set()

    async def take(self, max_reports: int, max_bytes: int = MAX_TAKEN_BYTES) -> list[Message]:
        """The next messages, one from each waiting lane in turn, until `max_reports` or `max_bytes` are taken."""
        while not self.turns:
            self.ready.clear()
            await self.ready.wait()
        taken, reports, size = [], 0, 0
        while self.turns and reports < max_reports and size < max_bytes:
            source_lanes = self.turns.popleft()
            lane = source_lanes.popleft()
            if not source_lanes:
                del self.waiting[lane.source]
            else:
                self.turns.append(source_lanes)
            message, message_size = lane.messages.popleft()
            taken.append(message)
            reports, size = reports + len(message[0]), size + message_size
            self.queued_bytes -= message_size
            if lane.messages:
                self._wait_turn(lane)
        return taken

    def _wait_turn(self, lane: Lane) -> None:
        source_lanes = self.waiting.get(lane.source)
        if source_lanes is None:
            source_lanes = self.waiting[lane.source] = deque()
            self.turns.append(source_lanes)
        source_lanes.append(lane)

    def drain(self) -> list[Message]:
        """Every message still waiting (the tracker is stopping)."""
        lanes = [lane for source_lanes in self.turns for lane in source_lanes]
        left = [message for lane in lanes for message, _ in lane.messages]
        for lane in lanes:
            lane.messages.clear()
        self.turns.clear()
        self.waiting.clear()
        self.queued_bytes = 0
        return left
