"""The event bus: committed events go out here, in journal order, to whoever follows them.

In-process by default (`MemoryBus`); Redis Streams when `SWITCHBOARD_REDIS_URL` is set (`RedisBus`), so
a second process (a wallboard, a report job, a second API node) sees every event in order and resumes
after a disconnect from the last id it saw.

Reading positions are message ids ("<ms>-<seq>", compare them with `id_key`), plus two words:
"0-0" (from the oldest message the bus keeps) and "$" (only what comes from now on). A reader whose
position is older than the bus keeps gets a `Gap` first and must resync from the store; the events'
journal `seq` in the payload then tells it which messages it already has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol, runtime_checkable

from engine.bus.memory import DEFAULT_RETENTION, MemoryBus
from engine.bus.message import (
    DEFAULT_STREAM,
    NOW,
    START,
    BusMessage,
    BusUnavailable,
    Gap,
    format_id,
    id_before,
    id_key,
)

__all__ = [
    "DEFAULT_RETENTION", "DEFAULT_STREAM", "NOW", "START", "Bus", "BusMessage", "BusUnavailable", "Gap",
    "MemoryBus", "format_id", "id_before", "id_key", "make_bus",
]


@runtime_checkable
class Bus(Protocol):
    async def publish(self, payload: dict[str, Any]) -> str:
        """Append one message (a JSON-serialisable dict); returns its id. BusUnavailable if down."""
        ...

    async def publish_many(self, payloads: Iterable[dict[str, Any]]) -> list[str]:
        """Append several, contiguous and all-or-nothing; returns their ids."""
        ...

    async def read(self, after_id: str | None = None, count: int = 100,
                   block_ms: int | None = None) -> list[BusMessage | Gap]:
        """Up to `count` messages after `after_id`; a `Gap` first if some are gone. Waits up to
        `block_ms` when there is nothing yet (None or 0: no wait)."""
        ...

    def subscribe(self, after_id: str | None = None) -> AsyncIterator[BusMessage | Gap]:
        """What came after `after_id` (None or "$": from now), then every new message, for ever;
        survives bus outages. Ends when the bus is closed."""
        ...

    async def last_id(self) -> str:
        """Id of the newest message ("0-0" if none): mark it, load a snapshot, then subscribe after it."""
        ...

    async def ping(self) -> bool:
        ...

    async def close(self) -> None:
        ...


def make_bus(url: str | None, *, stream: str = DEFAULT_STREAM, retention: int = DEFAULT_RETENTION) -> Bus:
    """The bus the settings ask for: no URL (or "memory://") is in-process, redis:// or rediss:// or
    unix:// is Redis Streams. Nothing is connected yet: a Redis that is down shows in ping()."""
    if not url or url.startswith("memory:"):
        return MemoryBus(retention=retention)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from engine.bus.redis_streams import RedisBus  # only load the Redis client when it is used

        return RedisBus(url, stream=stream, retention=retention)
    raise ValueError(f"unsupported bus URL {url!r}: expected redis://, rediss://, unix:// or none")
