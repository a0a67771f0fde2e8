"""Bounded history and wake-ups shared by the in-process bus and the Redis bus's local fan-out.

Each reader keeps its own position, so a slow reader loses nothing while its messages are still in the
ring, and a fast one never waits for it: fan-out costs one append and one wake-up per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Ring(Generic[T]):
    """The last `capacity` items, addressed by a sequence number (1, 2, ...) that only grows."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be at least 1")
        self.capacity = capacity
        self._slots: list[T | None] = [None] * capacity
        self._next = 1  # sequence number of the next item
        self._size = 0

    @property
    def first_seq(self) -> int:
        """Oldest item held (== last_seq + 1 when empty)."""
        return self._next - self._size

    @property
    def last_seq(self) -> int:
        return self._next - 1

    def __len__(self) -> int:
        return self._size

    def append(self, item: T) -> T | None:
        """Add an item; returns the one it pushed out, if the ring was full."""
        slot = self._next % self.capacity
        evicted = self._slots[slot] if self._size == self.capacity else None
        self._slots[slot] = item
        self._next += 1
        self._size = min(self._size + 1, self.capacity)
        return evicted

    def get(self, seq: int) -> T:
        if not self.first_seq <= seq <= self.last_seq:
            raise IndexError(f"sequence {seq} not held (holding {self.first_seq}..{self.last_seq})")
        item = self._slots[seq % self.capacity]
        assert item is not None
        return item

    def clear(self) -> None:
        """Forget every item; sequence numbers keep growing."""
        self._slots = [None] * self.capacity
        self._size = 0


class Signal:
    """Wakes every waiting reader when something changed (a new item, a reset, close)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()

    async def notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(self, ready: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until `ready()` holds or `timeout` seconds pass; returns `ready()`."""
        async with self._cond:
            if timeout is None:
                await self._cond.wait_for(ready)
                return True
            try:
                async with asyncio.timeout(timeout):
                    await self._cond.wait_for(ready)
            except TimeoutError:
                pass
            return ready()
