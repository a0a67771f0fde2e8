"""The Redis Streams bus: every process that follows the stream sees every event, in order.

One stream (default "switchboard:events"), XADD with MAXLEN ~ retention. Each message is an entry
with two fields, `type` and `payload` (JSON), under its Redis id; readers resume after the last id
they saw. Redis trims in whole blocks, so it may keep somewhat more than `retention`.

Within one process a single task follows the stream with a blocking XREAD and fans messages out to
local subscribers through a ring; a subscriber that starts behind (or falls behind) that ring catches
up from Redis itself with XRANGE, then joins the ring. So a thousand WebSocket clients cost one Redis
connection, not a thousand.

A reader's position is checked before it is trusted: if the id it resumes after is no longer in the
stream, messages after it may have been trimmed away, or the stream was reset (Redis restarted
without its data), and the reader gets a `Gap` instead of a silent hole. This is conservative at one
edge: a reader whose own last message was just trimmed is told to resync although it missed nothing.

Redis down: publish and read raise BusUnavailable at once (no hidden retries, which could publish
twice), ping() is False, and subscribers wait with backoff and carry on from their last id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.bus.fanout import Ring, Signal
from engine.bus.memory import DEFAULT_RETENTION
from engine.bus.message import (
    DEFAULT_STREAM,
    NOW,
    START,
    BusMessage,
    BusUnavailable,
    Gap,
    encode,
    format_id,
    id_before,
    id_key,
    type_of,
)

log = logging.getLogger("switchboard.bus")

# Redis answers that mean "not now" rather than "you are wrong"
_OUTAGE_REPLIES = ("OOM", "MASTERDOWN", "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS")


@contextlib.contextmanager
def _outage(what: str) -> Iterator[None]:
    """Turn "Redis is not there" into BusUnavailable; let real mistakes through."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError) as exc:
        raise BusUnavailable(f"Redis {what} failed: {exc}") from exc
    except ResponseError as exc:
        if str(exc).startswith(_OUTAGE_REPLIES):
            raise BusUnavailable(f"Redis {what} failed: {exc}") from exc
        raise


def _entries(reply: Any) -> list[BusMessage]:
    """Messages of an XREAD reply on one stream: [[key, entries]] in RESP2, {key: [entries]} in RESP3."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [_decode(e) for batches in reply.values() for batch in batches for e in batch]
    return [_decode(e) for _, entries in reply for e in entries]


def _decode(entry: Any) -> BusMessage:
    """One stream entry, (id, {field: value}), as a message."""
    msg_id, fields = entry
    raw = fields.get("payload")
    payload = json.loads(raw) if raw is not None else dict(fields)  # an entry some other tool wrote
    return BusMessage(str(msg_id), str(fields.get("type", "")), payload)


class _Tail:
    """This process's view of the stream's tail: what the one blocking reader has fetched lately."""

    def __init__(self, capacity: int) -> None:
        self.ring: Ring[BusMessage] = Ring(capacity)
        self.signal = Signal()
        self.epoch = 0  # bumped whenever continuity breaks, so ring readers go back to Redis
        self.floor: tuple[int, int] | None = None  # the ring has every message after this; None: not following
        self.last = START  # id of the newest message fetched (where the next XREAD starts)

    def covers(self, position: tuple[int, int]) -> bool:
        return self.floor is not None and position >= self.floor

    def start(self, position: str) -> None:
        self.epoch += 1
        self.ring.clear()
        self.floor = id_key(position)
        self.last = position

    def stop(self) -> None:
        self.epoch += 1
        self.ring.clear()
        self.floor = None

    def add(self, msg: BusMessage) -> None:
        evicted = self.ring.append(msg)
        self.last = msg.id
        if evicted is not None:
            self.floor = id_key(evicted.id)

    def seq_after(self, position: tuple[int, int]) -> int:
        """Sequence number of the first message in the ring after `position` (last_seq + 1 if none)."""
        lo, hi = self.ring.first_seq, self.ring.last_seq + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if id_key(self.ring.get(mid).id) <= position:
                lo = mid + 1
            else:
                hi = mid
        return lo


class RedisBus:
    def __init__(
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        retention: int = DEFAULT_RETENTION,
        local_buffer: int = 10_000,
        catchup_batch: int = 500,
        tail_block_ms: int = 5_000,
        command_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
    ) -> None:
        if retention < 1:
            raise ValueError("retention must be at least 1")
        self.stream = stream
        self.retention = retention
        self._catchup_batch = catchup_batch
        self._tail_block_ms = tail_block_ms
        self._command_timeout_s = command_timeout_s
        # No client-side retries: a retried XADD whose first reply was lost would publish twice.
        common: dict[str, Any] = {
            "protocol": 2,  # plain replies, and no RESP3 client-side handshake on every connect
            "decode_responses": True,
            "socket_connect_timeout": connect_timeout_s,
            "socket_keepalive": True,
            "retry": Retry(NoBackoff(), 0),
        }
        self._cmd = Redis.from_url(url, socket_timeout=command_timeout_s,
                                   client_name=f"switchboard-bus:{stream}", **common)
        # blocking reads get their own connections, bounded by asyncio timeouts instead of socket ones
        self._blocking = Redis.from_url(url, socket_timeout=None,
                                        client_name=f"switchboard-bus-tail:{stream}", **common)
        self._tail = _Tail(local_buffer)
        self._tail_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- writing -------------------------------------------------------------------------------
    async def publish(self, payload: dict[str, Any]) -> str:
        return (await self.publish_many([payload]))[0]

    async def publish_many(self, payloads: Iterable[dict[str, Any]]) -> list[str]:
        """Publish several messages in one round trip, all or none (MULTI/EXEC), contiguous in the stream."""
        entries = [{"type": type_of(p), "payload": encode(p)} for p in payloads]  # checked before sending
        if self._closed:
            raise BusUnavailable("the Redis bus is closed")
        if not entries:
            return []
        with _outage("publish"):
            if len(entries) == 1:
                new_id: Any = await self._cmd.xadd(self.stream, entries[0],  # type: ignore[arg-type]
                                                   maxlen=self.retention, approximate=True)
                return [str(new_id)]
            async with self._cmd.pipeline(transaction=True) as pipe:
                for fields in entries:
                    pipe.xadd(self.stream, fields, maxlen=self.retention, approximate=True)  # type: ignore[arg-type]
                return [str(i) for i in await pipe.execute()]

    # -- reading -------------------------------------------------------------------------------
    async def _fetch(self, after_id: str, count: int) -> list[BusMessage | Gap]:
        """Up to `count` messages after `after_id`, led by a Gap if that position is no longer valid.

        A position is valid if it is "0-0", a message still in the stream, or just before the oldest."""
        key = id_key(after_id)
        oldest: Any
        with _outage("read"):
            if key == (0, 0):
                oldest = await self._cmd.xrange(self.stream, "-", "+", count=count)
                return [_decode(e) for e in oldest]
            pos = format_id(key)
            async with self._cmd.pipeline(transaction=True) as pipe:
                pipe.xrange(self.stream, pos, pos, count=1)
                pipe.xrange(self.stream, "-", "+", count=1)
                pipe.xrange(self.stream, "(" + pos, "+", count=count)
                held, oldest, after = await pipe.execute()
            if held or (oldest and id_before(oldest[0][0]) == pos):
                return [_decode(e) for e in after]
            oldest = await self._cmd.xrange(self.stream, "-", "+", count=count)
        resume = id_before(oldest[0][0]) if oldest else START
        log.warning("bus: messages after %s are gone from %s; reader must resync", after_id, self.stream)
        return [Gap(after_id, resume), *(_decode(e) for e in oldest)]

    async def read(self, after_id: str | None = None, count: int = 100,
                   block_ms: int | None = None) -> list[BusMessage | Gap]:
        """Up to `count` messages after `after_id` (None or "0-0": the oldest kept; "$": only new ones).

        With `block_ms`, waits that long for a message when none is there yet. A `Gap` comes first
        when messages after `after_id` are gone. Raises BusUnavailable when Redis cannot be reached."""
        if count < 1:
            raise ValueError("count must be at least 1")
        position = START if after_id is None else after_id
        if position != NOW:
            found = await self._fetch(position, count)
            if found or not block_ms:
                return found
            position = format_id(id_key(position))
        elif not block_ms:
            return []
        with _outage("read"):
            async with asyncio.timeout(block_ms / 1000 + self._command_timeout_s):
                reply = await self._blocking.xread({self.stream: position}, count=count, block=block_ms)
        return [*_entries(reply)]

    def subscribe(self, after_id: str | None = None) -> AsyncIterator[BusMessage | Gap]:
        """Every message after `after_id`, then each new one as it comes, across Redis outages.

        None or "$": from the newest message in the stream when iteration starts (use last_id() first
        for an exact mark). A `Gap` is yielded when messages after the position are gone."""
        start = None if after_id in (None, NOW) else format_id(id_key(after_id))  # bad ids fail here
        return self._follow(after_id, start)

    async def _follow(self, after_id: str | None, start: str | None) -> AsyncIterator[BusMessage | Gap]:
        self._ensure_tail()
        tail = self._tail
        failures = 0
        while start is None:  # "from now": ask the stream where now is
            if self._closed:
                return
            try:
                start = await self.last_id()
            except BusUnavailable:
                failures += 1
                await self._pause(failures)
        pos = start
        checked = after_id in (None, NOW)  # a position from a caller is verified against Redis first
        while not self._closed:
            here = id_key(pos)
            if checked and tail.covers(here):
                # follow the local ring until it breaks (tail reset) or this reader falls off its end
                epoch, seq = tail.epoch, tail.seq_after(here)
                while not self._closed and tail.epoch == epoch and seq >= tail.ring.first_seq:
                    if seq <= tail.ring.last_seq:
                        msg = tail.ring.get(seq)
                        seq += 1
                        if id_key(msg.id) > here:  # skip what this reader already had from Redis
                            yield msg
                            pos, here = msg.id, id_key(msg.id)
                    else:
                        want = seq  # (predicates here are only used during their own wait)
                        await tail.signal.wait_for(lambda: (
                            self._closed or tail.epoch != epoch or tail.ring.last_seq >= want))  # noqa: B023
                checked = False  # the tail broke or left this reader behind: check with Redis again
                continue
            try:
                batch = await self._fetch(pos, self._catchup_batch)
            except BusUnavailable:
                failures += 1
                await self._pause(failures)
                continue
            failures, checked = 0, True
            for item in batch:
                yield item
                pos = item.resume_after if isinstance(item, Gap) else item.id
            if len(batch) < self._catchup_batch and not tail.covers(id_key(pos)):
                # at the end of the stream but the local tail is not there (yet): wait a little, look again
                mark = id_key(pos)
                await tail.signal.wait_for(lambda: self._closed or tail.covers(mark), timeout=1.0)  # noqa: B023

    async def last_id(self) -> str:
        """Id of the newest message in the stream ("0-0" if none)."""
        with _outage("read"):
            newest: Any = await self._cmd.xrevrange(self.stream, "+", "-", count=1)
        return str(newest[0][0]) if newest else START

    # -- the one blocking reader of this process -----------------------------------------------
    def _ensure_tail(self) -> None:
        if not self._closed and (self._tail_task is None or self._tail_task.done()):
            self._tail_task = asyncio.get_running_loop().create_task(self._run_tail(), name="bus-tail")

    async def _run_tail(self) -> None:
        tail = self._tail
        failures = 0
        while not self._closed:
            try:
                if tail.floor is None:
                    tail.start(await self.last_id())
                    await tail.signal.notify()
                elif failures:
                    # back after an outage: is our position still in the stream?
                    found = await self._fetch(tail.last, 1)
                    if found and isinstance(found[0], Gap):
                        tail.stop()  # start again at the newest; readers find their own way back
                        await tail.signal.notify()
                        continue
                if failures:
                    log.info("bus: Redis back; following %s after %s", self.stream, tail.last)
                    failures = 0
                with _outage("read"):
                    async with asyncio.timeout(self._tail_block_ms / 1000 + self._command_timeout_s):
                        reply = await self._blocking.xread({self.stream: tail.last}, count=1000,
                                                           block=self._tail_block_ms)
                fetched = _entries(reply)
                for msg in fetched:
                    tail.add(msg)
                if fetched:
                    await tail.signal.notify()
            except BusUnavailable as exc:
                if failures == 0:
                    log.warning("bus: lost Redis (%s); retrying", exc)
                failures += 1
                await self._pause(failures)
            except Exception:  # never let the one reader die: readers would fall back to polling
                log.exception("bus: tail reader failed; retrying")
                failures += 1
                await self._pause(failures)

    async def _pause(self, failures: int) -> None:
        """Back off before retrying (50 ms doubling up to 2 s, jittered); cut short by close()."""
        delay = min(2.0, 0.05 * 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)
        await self._tail.signal.wait_for(lambda: self._closed, timeout=delay)

    # -- health and shutdown -------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            with _outage("ping"):
                async with asyncio.timeout(self._command_timeout_s):
                    return bool(await self._cmd.ping())
        except BusUnavailable:
            return False

    async def close(self) -> None:
        self._closed = True
        await self._tail.signal.notify()
        task, self._tail_task = self._tail_task, None
        while task is not None and not task.done():
            # redis-py can swallow a cancel that lands mid-handshake: ask again until the reader is gone
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        await self._cmd.aclose()
        await self._blocking.aclose()
