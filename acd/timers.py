"""The router's timers: taken earliest first, and in the order they were set where due at the same instant.

Most timers run a fixed delay from the moment they are set (an offer's timeout, a queue's wrap-up time),
and the router's clock never runs backwards, so the timers of one delay come due in the order they were
set: each delay gets a first-in-first-out lane, constant time to set and to take. Only the others (a
widening step counted from a contact's original age, a booked callback) go to a heap. The earliest timer
is the earliest of the heap's top and the lanes' heads; (due, seq) orders them all, so the order is the
one a single heap would give.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

from acd.model import pickled


class Timer:
    """What to check (`kind`, a router's own code) about a contact at `due`; `stamp` tells the timer apart
    from a later one of the same kind (the deadline of the offer it was set for, say)."""

    __slots__ = ("due", "seq", "kind", "contact", "stamp")

    def __reduce__(self) -> tuple[Any, ...]:
        return Timer, (self.due, self.seq, self.kind, self.contact, self.stamp)

    def __init__(self, due: float, seq: int, kind: int, contact: str, stamp: float) -> None:
        self.due = due
        self.seq = seq  # unique and rising: ties between equal due times go to the first set
        self.kind = kind
        self.contact = contact
        self.stamp = stamp

    def __lt__(self, other: Timer) -> bool:
        return self.due < other.due or (self.due == other.due and self.seq < other.seq)

    def __repr__(self) -> str:
        return f"Timer({self.due!r}, {self.seq!r}, {self.kind!r}, {self.contact!r}, {self.stamp!r})"


class Timers:
    __slots__ = ("heap", "lanes", "by_delay")

    def __reduce__(self) -> tuple[Any, ...]:
        return pickled(self, ())

    def __init__(self) -> None:
        self.heap: list[Timer] = []
        self.lanes: list[deque[Timer]] = []  # one per fixed delay, each in the order set (so in due order)
        # the same lanes by delay, to find one when setting; `first()`, run several times a decision, walks
        # the list (compiled, walking the dict's values cost 4% more of a routing decision)
        self.by_delay: dict[float, deque[Timer]] = {}

    def add(self, timer: Timer, delay: float = -1.0) -> None:
        """Set a timer, whose seq is larger than any set before; `delay`, when it is one, the fixed delay
        from now it was set with (0 or more)."""
        if delay >= 0.0:
            lane = self.by_delay.get(delay)
            if lane is None:
                lane = self.by_delay[delay] = deque()
                self.lanes.append(lane)
            if not lane or lane[-1].due <= timer.due:
                lane.append(timer)
                return
        heapq.heappush(self.heap, timer)  # (a lane's order would break: a clock set back in a replay)

    def first(self) -> Timer | None:
        """The earliest timer, left in place."""
        best = self.heap[0] if self.heap else None
        for lane in self.lanes:
            if lane:
                head = lane[0]
                if best is None or head < best:
                    best = head
        return best

    def pop(self, timer: Timer) -> None:
        """Take away `timer`, which `first()` has just given."""
        heap = self.heap
        if heap and heap[0] is timer:
            heapq.heappop(heap)
            return
        for lane in self.lanes:
            if lane and lane[0] is timer:
                lane.popleft()
                return
        raise ValueError(f"{timer!r} is not the first timer")

    def copy(self) -> Timers:
        new = Timers()
        new.heap = list(self.heap)
        for delay, lane in self.by_delay.items():
            new.by_delay[delay] = copied = deque(lane)
            new.lanes.append(copied)
        return new
