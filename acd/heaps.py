"""Reading a binary heap in order without taking anything out of it."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any


def in_order(heap: list[Any]) -> Iterator[Any]:
    """The heap's entries smallest first, the heap left as it is: a side heap of (entry, index) holds the
    frontier, so a walk that stops after k entries touches about 2k of them, not the whole heap. The heap
    must not change while the walk goes on."""
    if not heap:
        return
    side: list[tuple[Any, int]] = [(heap[0], 0)]
    size = len(heap)
    while side:
        entry, i = heapq.heappop(side)
        yield entry
        for j in (2 * i + 1, 2 * i + 2):
            if j < size:
                heapq.heappush(side, (heap[j], j))
