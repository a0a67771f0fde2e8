"""Bus throughput: messages per second published and consumed, in-process and on Redis.

    python -m engine.bus.throughput [--redis-url redis://127.0.0.1:6379/15] [-n 20000]

Prints figures, asserts nothing about speed. Uses a stream key of its own on Redis and deletes it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from engine.bus import Bus, BusMessage, MemoryBus

# about the size of a real ContactQueued event with its journal seq
SAMPLE: dict[str, Any] = {
    "type": "ContactQueued", "t": 1700000000.123, "contact": "c-000123", "queue": "billing", "channel": "voice",
    "requirements": [["billing", 3], ["spanish", 5]], "priority": 5, "attributes": {"ani": "+15551234567"},
    "enqueued_at": 1700000000.123, "preferred_agent": None, "restrict_until": None, "seq": 0,
}


def event(i: int) -> dict[str, Any]:
    return {**SAMPLE, "seq": i}


async def timed(n: int, work: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await work()
    return n / (time.perf_counter() - start)


async def consume(bus: Bus, after_id: str, n: int) -> None:
    got = 0
    async for item in bus.subscribe(after_id):
        if isinstance(item, BusMessage):
            got += 1
            if got == n:
                return


async def measure(bus: Bus, n: int, readers: int = 10) -> dict[str, float]:
    figures: dict[str, float] = {}

    async def one_by_one() -> None:
        for i in range(n):
            await bus.publish(event(i))

    async def batches() -> None:
        for i in range(0, n, 100):
            await bus.publish_many([event(i + k) for k in range(100)])

    mark = await bus.last_id()
    figures["publish, one at a time"] = await timed(n, one_by_one)
    figures["consume, catching up (subscribe from an old id)"] = await timed(n, lambda: consume(bus, mark, n))
    figures["publish_many, batches of 100"] = await timed(n, batches)

    async def live(count: int) -> None:
        mark = await bus.last_id()
        tasks = [asyncio.create_task(consume(bus, mark, n)) for _ in range(count)]
        await asyncio.sleep(0.05)  # let the readers reach the tail
        await batches()
        await asyncio.gather(*tasks)

    figures["live: publish_many -> 1 subscriber, end to end"] = await timed(n, lambda: live(1))
    figures[f"live: publish_many -> {readers} subscribers, deliveries"] = await timed(
        n * readers, lambda: live(readers))
    return figures


async def main_async(redis_url: str | None, n: int) -> None:
    buses: list[tuple[str, Bus]] = [("memory", MemoryBus())]
    stream = f"bench:bus:{uuid.uuid4().hex[:8]}"
    if redis_url:
        from engine.bus.redis_streams import RedisBus

        buses.append(("redis", RedisBus(redis_url, stream=stream)))
    try:
        for name, bus in buses:
            for label, rate in (await measure(bus, n)).items():
                print(f"{name:7s} {label:55s} {rate:12,.0f} msg/s")
    finally:
        for _, bus in buses:
            await bus.close()
        if redis_url:
            from redis.asyncio import Redis

            admin = Redis.from_url(redis_url)
            await admin.delete(stream)
            await admin.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15", help='"" to skip Redis')
    parser.add_argument("-n", type=int, default=20_000, help="messages per figure")
    args = parser.parse_args()
    asyncio.run(main_async(args.redis_url or None, max(100, args.n // 100 * 100)))


if __name__ == "__main__":
    main()
