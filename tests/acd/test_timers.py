"""The router's timers (`acd.timers`): lanes for fixed delays beside a heap, taken in exactly the order one
heap of (due, seq) would give, whatever is set with a delay or without, in or out of a lane's order."""

from __future__ import annotations

import heapq
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from acd.timers import Timer, Timers

# (due, delay or -1): dues from a few values, so that equal due times (decided by seq) are common
SETS = st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.5, 3.0, 10.0, 20.0]), st.sampled_from([-1.0, 0.0, 5.0, 20.0])),
                max_size=60)


def _drain(timers: Timers) -> list[int]:
    taken = []
    while (first := timers.first()) is not None:
        timers.pop(first)
        taken.append(first.seq)
    return taken


@settings(max_examples=300, derandomize=True, deadline=None)
@given(sets=SETS, takes=st.lists(st.integers(0, 3), max_size=60))
def test_timers_come_out_in_single_heap_order(sets: list[tuple[float, float]], takes: list[int]) -> None:
    """Setting and taking interleaved: each timer taken is the one a single heap would give next."""
    timers, reference = Timers(), []
    pending = list(enumerate(sets, start=1))
    taken, expected = [], []
    for step in range(len(pending) + len(takes)):
        if pending and (step >= len(takes) or takes[step] != 0):
            seq, (due, delay) = pending.pop(0)
            timers.add(Timer(due, seq, 0, f"c{seq}", due), delay)
            heapq.heappush(reference, (due, seq))
        elif reference:
            first = timers.first()
            assert first is not None
            timers.pop(first)
            taken.append(first.seq)
            expected.append(heapq.heappop(reference)[1])
    taken += _drain(timers)
    expected += [seq for _, seq in sorted(reference)]
    assert taken == expected


def test_a_lane_out_of_order_goes_to_the_heap_and_order_holds() -> None:
    timers = Timers()
    timers.add(Timer(20.0, 1, 0, "a", 20.0), delay=20.0)
    timers.add(Timer(5.0, 2, 0, "b", 5.0), delay=20.0)  # a clock set back: not after the lane's last
    timers.add(Timer(5.0, 3, 0, "c", 5.0))
    assert [len(lane) for lane in timers.lanes] == [1] and len(timers.heap) == 2
    assert _drain(timers) == [2, 3, 1]


def test_a_copy_and_a_pickled_timers_go_on_alone() -> None:
    timers = Timers()
    for seq, (due, delay) in enumerate([(3.0, 20.0), (1.0, -1.0), (4.0, 20.0), (2.0, 0.0)], start=1):
        timers.add(Timer(due, seq, seq % 3, f"c{seq}", due), delay)
    copied, restored = timers.copy(), pickle.loads(pickle.dumps(timers))
    first = timers.first()
    assert first is not None and first.seq == 2
    timers.pop(first)
    assert _drain(copied) == [2, 4, 1, 3] == _drain(restored)
    assert _drain(timers) == [4, 1, 3]
    t = Timer(1.5, 7, 2, "c7", 9.0)
    u = pickle.loads(pickle.dumps(t))
    assert (u.due, u.seq, u.kind, u.contact, u.stamp) == (1.5, 7, 2, "c7", 9.0)
