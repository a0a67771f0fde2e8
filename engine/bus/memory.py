"""The in-process bus: the default when no Redis is configured.

Messages are numbered "<epoch>-1", "<epoch>-2", ... (epoch: when this bus started, in ms, so an id from
before a restart is never mistaken for one of ours: it reads as a gap, and the reader resyncs) and kept in a ring of the last `retention`; every reader walks
the ring at its own pace. Payloads go through JSON on the way in, exactly as on Redis, so a reader
sees the same values (lists, not tuples) whichever bus runs, and no publisher can change a message
after the fact. Treat received payloads as read-only: all readers share them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from engine.bus.fanout import Ring, Signal
from engine.bus.message import NOW, START, BusMessage, BusUnavailable, Gap, encode, id_key, type_of

DEFAULT_RETENTION = 100_000


class MemoryBus:
    def __init__(self, retention: int = DEFAULT_RETENTION) -> None:
        self.retention = retention
        self._ring: Ring[BusMessage] = Ring(retention)
        self._signal = Signal()
        self._closed = False
        self._epoch = int(time.time() * 1000)

    def _id(self, n: int) -> str:
        return f"{self._epoch}-{n}"

    # -- writing -------------------------------------------------------------------------------
    async def publish(self, payload: dict[str, Any]) -> str:
        return (await self.publish_many([payload]))[0]

    async def publish_many(self, payloads: Iterable[dict[str, Any]]) -> list[str]:
        """Publish several messages back to back (one wake-up for the readers)."""
        if self._closed:
            raise BusUnavailable("the in-process bus is closed")
        encoded = [(type_of(p), encode(p)) for p in payloads]  # all checked before any is published
        ids = []
        for kind, data in encoded:
            msg = BusMessage(self._id(self._ring.last_seq + 1), kind, json.loads(data))
            self._ring.append(msg)
            ids.append(msg.id)
        await self._signal.notify()
        return ids

    # -- reading -------------------------------------------------------------------------------
    def _position(self, after_id: str) -> tuple[int, Gap | None]:
        """Sequence number to read after, and the gap if `after_id` is no longer (or never was) held."""
        ring = self._ring
        if after_id == NOW:
            return ring.last_seq, None
        key = id_key(after_id)
        oldest_position = ring.first_seq - 1
        if key == (0, 0):
            return oldest_position, None
        # message n has id (epoch, n): the messages after (epoch, b) are those with n > b
        if key[0] == self._epoch and oldest_position <= key[1] <= ring.last_seq:
            return key[1], None
        # older than retention, from another run of this bus (a restart), or never published here
        return oldest_position, Gap(after_id, self._id(oldest_position))

    def _take(self, position: int, count: int) -> list[BusMessage | Gap]:
        ring = self._ring
        out: list[BusMessage | Gap] = []
        if position < ring.first_seq - 1:  # the ring moved on while this reader waited
            out.append(Gap(self._id(position), self._id(ring.first_seq - 1)))
            position = ring.first_seq - 1
        out.extend(ring.get(n) for n in range(position + 1, min(ring.last_seq, position + count) + 1))
        return out

    async def read(self, after_id: str | None = None, count: int = 100,
                   block_ms: int | None = None) -> list[BusMessage | Gap]:
        """Up to `count` messages after `after_id` (None or "0-0": the oldest held; "$": only new ones).

        With `block_ms`, waits that long for a message when none is there yet. A `Gap` comes first
        when messages after `after_id` are gone."""
        if count < 1:
            raise ValueError("count must be at least 1")
        position, gap = self._position(START if after_id is None else after_id)
        if gap is not None:
            return [gap, *self._take(position, count)]
        if block_ms and self._ring.last_seq <= position and not self._closed:
            await self._signal.wait_for(lambda: self._closed or self._ring.last_seq > position, block_ms / 1000)
        return self._take(position, count)

    def subscribe(self, after_id: str | None = None) -> AsyncIterator[BusMessage | Gap]:
        """Every message after `after_id` (None or "$": from this call on), then each new one as it comes.

        The position is fixed when this is called, not at the first step of the iteration."""
        if after_id is None:
            after_id = NOW
        position, gap = self._position(after_id)
        return self._follow(position, gap)

    async def _follow(self, position: int, gap: Gap | None) -> AsyncIterator[BusMessage | Gap]:
        ring = self._ring
        if gap is not None:
            yield gap
        while not self._closed:
            if position < ring.last_seq:
                if position + 1 < ring.first_seq:  # this reader fell behind by more than retention
                    yield Gap(self._id(position), self._id(ring.first_seq - 1))
                    position = ring.first_seq - 1
                    continue
                position += 1
                yield ring.get(position)
            else:
                seen = position
                # the predicate is only used during this wait, before `seen` changes
                await self._signal.wait_for(lambda: self._closed or ring.last_seq > seen)  # noqa: B023

    async def last_id(self) -> str:
        return self._id(self._ring.last_seq) if self._ring.last_seq else "0-0"

    # -- health and shutdown -------------------------------------------------------------------
    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
        await self._signal.notify()
