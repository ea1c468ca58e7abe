"""Group commit's first half: wait for one request, then take what else is already queued."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def take_batch(queue: asyncio.Queue[T], limit: int, size: Callable[[T], int]) -> list[T]:
    """The next request and every one queued behind it, until their `size`s add up to `limit` or more."""
    batch = [await queue.get()]
    total = size(batch[0])
    while total < limit and not queue.empty():
        batch.append(queue.get_nowait())
        total += size(batch[-1])
    return batch
