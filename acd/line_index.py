"""A queue's line in service order, for answering "what place is this caller?" in O(log n).

The router changes its lines on every decision but is asked for a place less often (a position announcement,
an API read; the simulator asks once per arrival). So routing only notes each change (one append, and
nothing at all while nobody has asked), and the sorted index catches up when a place is asked for. If
nobody asks for a while, the notes are dropped and the next ask rebuilds the index from the line: memory
stays bounded and each change costs O(log n) amortised. The index is a cache: not pickled, not state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sortedcontainers import SortedList

# a contact's place key: (ageing-priority key, original age, arrival seq), as in the route-class heaps
LineKey = tuple[float, float, int]
_MIN_NOTES = 64  # notes kept before an idle index is dropped, at the least


class LineIndex:
    __slots__ = ("_notes", "_sorted", "live")

    def __init__(self) -> None:
        self.live = False  # whether changes must be noted: an index exists to keep up (read on the hot path)
        self._sorted: SortedList | None = None  # None: nobody asked since the last drop
        self._notes: list[tuple[bool, LineKey]] = []  # (entered?, key) since the index was last brought up

    def note(self, entered: bool, key: LineKey) -> None:
        """A contact entered (True) or left the line. Call only while `live`."""
        notes = self._notes
        notes.append((entered, key))
        if len(notes) > _MIN_NOTES and len(notes) > len(self._sorted or ()):
            self._sorted, self._notes, self.live = None, [], False  # nobody asks: rebuild on the next ask

    def ahead_of(self, key: LineKey, line: Callable[[], Iterable[LineKey]]) -> int:
        """How many in line come before `key`; `line` gives the keys of the whole line, for a rebuild."""
        index = self._sorted
        if index is None:
            index = self._sorted = SortedList(line())
            self._notes, self.live = [], True
        elif self._notes:
            for entered, k in self._notes:
                if entered:
                    index.add(k)
                else:
                    index.discard(k)
            self._notes = []
        return int(index.bisect_left(key))

    def __reduce__(self) -> tuple[type[LineIndex], tuple[()]]:
        return LineIndex, ()  # a cache: a restored router starts without one
