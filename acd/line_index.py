"""A queue's line in service order, for answering "what place is this caller?" by bisection.

The router changes its lines on every decision but is asked for a place less often (a position announcement,
an API read; the simulator's score of what a caller who jumped the line was told). So routing only notes
each change (one append, and nothing at all while nobody has asked), and the sorted index catches up when
a place is asked for. If nobody asks for a while, the notes are dropped and the next ask rebuilds the index from the line:
memory stays bounded. The index is a plain sorted list: an ask is a bisection (O(log n)); catching up on
a change is a bisection and one shift of the list's pointer array, which is C memmove and cheaper up to
tens of thousands in line than a balanced structure's interpreted bookkeeping. The index is a cache: not
pickled, not state. Beside it the line keeps its tail, for a newcomer's place without any index.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable

# a contact's place key: (ageing-priority key, original age, arrival seq), as in the route-class heaps
LineKey = tuple[float, float, int]
_MIN_NOTES = 8  # notes kept before an idle index is dropped, at the least
_NONE: LineKey = (float("inf"), float("inf"), 0)  # the tail of a line nobody has entered yet


class LineIndex:
    __slots__ = ("_notes", "_sorted", "live", "tail")

    def __init__(self) -> None:
        self.live = False  # whether changes must be noted: an index exists to keep up (read on the hot path)
        self._sorted: list[LineKey] | None = None  # None: nobody asked since the last drop
        self._notes: list[tuple[bool, LineKey]] = []  # (entered?, key) since the index was last brought up
        # at or past every key in line (the router raises it as contacts enter and sets it when one enters
        # an empty line; leaving does not lower it): a newcomer whose key is the tail is last in line, which
        # the router then knows without the index. State, not cache: what a caller is told depends on it
        self.tail: LineKey = _NONE

    def note(self, entered: bool, key: LineKey) -> None:
        """A contact entered (True) or left the line. Call only while `live`."""
        notes = self._notes
        notes.append((entered, key))
        # catching up costs more per note than a rebuild per contact in line (a sorted insert against a key
        # read): past a quarter of the line in notes, let go and rebuild on the next ask
        if len(notes) > _MIN_NOTES + len(self._sorted or ()) // 4:
            self._sorted, self._notes, self.live = None, [], False

    def ahead_of(self, key: LineKey, line: Callable[[], Iterable[LineKey]]) -> int:
        """How many in line come before `key`; `line` gives the keys of the whole line, for a rebuild."""
        index = self._sorted
        if index is None:
            index = self._sorted = sorted(line())
            self._notes, self.live = [], True
        elif self._notes:
            for entered, k in self._notes:
                if entered:
                    insort(index, k)
                else:
                    i = bisect_left(index, k)
                    if i < len(index) and index[i] == k:
                        del index[i]
            self._notes = []
        return bisect_left(index, key)

    def __reduce__(self) -> tuple[Callable[[LineKey], LineIndex], tuple[LineKey]]:
        return _restored, (self.tail,)  # the index is a cache: a restored router starts without one


def _restored(tail: LineKey) -> LineIndex:
    index = LineIndex()
    index.tail = tail
    return index
