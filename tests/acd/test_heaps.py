"""`acd.heaps.in_order`: a heap read smallest first, left as it was."""

from __future__ import annotations

import heapq
from itertools import islice

from hypothesis import given
from hypothesis import strategies as st

from acd.heaps import in_order


@given(st.lists(st.integers(-50, 50)), st.integers(0, 60))
def test_in_order_gives_the_sorted_entries_and_leaves_the_heap_alone(values: list[int], stop: int) -> None:
    heap = list(values)
    heapq.heapify(heap)
    before = list(heap)
    assert list(in_order(heap)) == sorted(values)
    assert list(islice(in_order(heap), stop)) == sorted(values)[:stop]  # a walk stopped early
    assert heap == before
