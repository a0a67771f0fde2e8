"""The event bus, in-process and on Redis Streams: order, resume, gaps, outages, a second process.

Redis comes from SWITCHBOARD_TEST_REDIS_URL (default redis://127.0.0.1:6379/15). If it cannot be
reached these tests fail and say so. Each test uses a stream key of its own and deletes it afterwards.
Outages are made with CLIENT KILL and with a TCP relay in front of Redis that the test can cut.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis

from engine.bus import (
    NOW,
    START,
    Bus,
    BusMessage,
    BusUnavailable,
    Gap,
    MemoryBus,
    id_before,
    id_key,
    make_bus,
)
from engine.bus.redis_streams import RedisBus
from engine.commands import follow as follow_command

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
CLOSED_PORT_URL = "redis://127.0.0.1:6390/0"  # nothing listens there
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30  # a hang guard, not a speed check

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_admin() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=10, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is unreachable at {REDIS_URL} ({type(exc).__name__}: {exc}). The bus tests need "
                    "it: start Redis or set SWITCHBOARD_TEST_REDIS_URL.", pytrace=False)
    yield client
    client.close()


@pytest.fixture
def stream(redis_admin: redis.Redis) -> Iterator[str]:
    key = f"test:bus:{uuid.uuid4().hex[:12]}"
    yield key
    redis_admin.delete(key)


@pytest.fixture
async def open_bus(stream: str) -> AsyncIterator[Callable[..., Bus]]:
    """Opens buses of a kind ("memory" or "redis", on the test's stream) and closes them afterwards."""
    opened: list[Bus] = []

    def _open(kind: str, **kw: Any) -> Bus:
        bus: Bus = MemoryBus(**kw) if kind == "memory" else RedisBus(kw.pop("url", REDIS_URL), stream=stream, **kw)
        opened.append(bus)
        return bus

    yield _open
    for bus in opened:
        await bus.close()


class Follower:
    """Collects what a subscription yields, in a task of its own."""

    def __init__(self, bus: Bus, after_id: str | None) -> None:
        self.items: list[BusMessage | Gap] = []
        self.task = asyncio.get_running_loop().create_task(self._run(bus, after_id))

    async def _run(self, bus: Bus, after_id: str | None) -> None:
        async for item in bus.subscribe(after_id):
            self.items.append(item)

    @property
    def messages(self) -> list[BusMessage]:
        return [m for m in self.items if isinstance(m, BusMessage)]

    async def wait_for(self, n: int) -> list[BusMessage]:
        """Wait until `n` messages came (fails after WAIT_S), then return them."""
        with anyio.fail_after(WAIT_S):
            while len(self.messages) < n:
                if self.task.done():
                    self.task.result()  # raises what ended it
                    raise AssertionError(f"subscription ended after {len(self.messages)} of {n} messages")
                await asyncio.sleep(0.005)
        return self.messages

    async def stop(self) -> None:
        self.task.cancel()
        with anyio.move_on_after(5):
            await asyncio.gather(self.task, return_exceptions=True)


def ids(items: list[BusMessage | Gap]) -> list[str]:
    """Ids of messages; fails if a gap is among them."""
    assert not any(isinstance(m, Gap) for m in items), items
    return [m.id for m in items if isinstance(m, BusMessage)]


def assert_in_order(messages: list[BusMessage]) -> None:
    keys = [id_key(m.id) for m in messages]
    assert keys == sorted(keys) and len(set(keys)) == len(keys), "ids must strictly increase"


async def read_all(bus: Bus, after_id: str | None = None) -> list[BusMessage | Gap]:
    out: list[BusMessage | Gap] = []
    while batch := await bus.read(after_id, count=97):
        out.extend(batch)
        last = batch[-1]
        after_id = last.resume_after if isinstance(last, Gap) else last.id
    return out


class RedisRelay:
    """A TCP relay in front of Redis: stop() refuses connections and cuts the open ones, like a crash."""

    def __init__(self, target: str) -> None:
        url = redis.connection.parse_url(target)
        self.host, self.port, self.db = url.get("host", "127.0.0.1"), url.get("port", 6379), url.get("db", 0)
        self.listen_port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._generation = 0  # a connection accepted by an earlier start() is cut when its handler runs

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.listen_port}/{self.db}"

    async def start(self) -> None:
        self._generation += 1
        self._server = await asyncio.start_server(functools.partial(self._relay, self._generation),
                                                  "127.0.0.1", self.listen_port, reuse_address=True)
        self.listen_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self._generation += 1
        for w in list(self._writers):
            w.transport.abort()
        await asyncio.gather(*self._handlers, return_exceptions=True)  # every relayed socket is shut
        self._server = None

    async def _relay(self, generation: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if generation != self._generation:  # accepted just before stop(): it must not get through
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self._writers.add(up_writer)
        if generation != self._generation:
            writer.transport.abort()
            up_writer.transport.abort()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.fixture
async def relay() -> AsyncIterator[RedisRelay]:
    r = RedisRelay(REDIS_URL)
    await r.start()
    yield r
    if r._server is not None:
        await r.stop()


BOTH = pytest.mark.parametrize("kind", ["memory", "redis"])


# -- ids and the factory ------------------------------------------------------------------------
def test_ids_order_as_pairs_of_integers() -> None:
    assert id_key("10-0") > id_key("9-5") > id_key("9-0") > id_key("0-0")
    assert id_key("7") == (7, 0)
    assert id_before("9-5") == "9-4"
    assert id_key(id_before("9-0")) == (8, 2**64 - 1)
    assert id_before("0-0") == START
    for bad in ("", "x-1", "1-", "-1", "1-2-3", " 1-0", "1-+2"):
        with pytest.raises(ValueError):
            id_key(bad)


async def test_make_bus_picks_the_bus_from_the_url() -> None:
    assert isinstance(make_bus(None), MemoryBus)
    assert isinstance(make_bus("memory://"), MemoryBus)
    redis_bus = make_bus(REDIS_URL, stream="test:bus:factory")
    try:
        assert isinstance(redis_bus, RedisBus) and isinstance(redis_bus, Bus)
        assert redis_bus.stream == "test:bus:factory"
    finally:
        await redis_bus.close()
    with pytest.raises(ValueError, match="unsupported bus URL"):
        make_bus("amqp://localhost")


# -- behaviour both buses share -----------------------------------------------------------------
@BOTH
async def test_many_messages_arrive_in_order(kind: str, open_bus: Callable[..., Bus]) -> None:
    bus = open_bus(kind)
    mark = await bus.last_id()
    follower = Follower(bus, mark)
    sent: list[str] = []
    for i in range(0, 2000, 40):  # single messages and batches, interleaved
        sent.append(await bus.publish({"type": "Ping", "i": i}))
        sent += await bus.publish_many([{"type": "Ping", "i": i + k} for k in range(1, 40)])
    got = await follower.wait_for(2000)
    await follower.stop()
    assert_in_order(got)
    assert [m.id for m in got] == sent
    assert [m.payload["i"] for m in got] == list(range(2000))
    assert all(m.type == "Ping" for m in got)
    # a reader paging through the stream sees the very same sequence
    assert ids(await read_all(bus, mark)) == sent
    assert await bus.last_id() == sent[-1]


@BOTH
async def test_payloads_come_back_as_json_and_bad_ones_are_refused(kind: str, open_bus: Callable[..., Bus]) -> None:
    bus = open_bus(kind)
    mark = await bus.last_id()
    await bus.publish({"type": "ContactQueued", "requirements": (("billing", 3),), "n": None, "t": 1.5})
    with pytest.raises(TypeError):
        await bus.publish({"type": "Bad", "when": object()})
    with pytest.raises(TypeError):  # all or nothing: the good one before the bad one is not published
        await bus.publish_many([{"type": "Good"}, {"type": "Bad", "x": {1, 2}}])
    got = await bus.read(mark)
    assert len(got) == 1 and isinstance(got[0], BusMessage)
    assert got[0].payload == {"type": "ContactQueued", "requirements": [["billing", 3]], "n": None, "t": 1.5}


@BOTH
async def test_subscribe_from_now_skips_history(kind: str, open_bus: Callable[..., Bus]) -> None:
    bus = open_bus(kind)
    await bus.publish_many([{"type": "Old", "i": i} for i in range(10)])
    follower = Follower(bus, NOW)
    # the Redis bus fixes "now" when the iteration starts: probe until the follower is live
    with anyio.fail_after(WAIT_S):
        while not follower.messages:
            await bus.publish({"type": "Probe"})
            await asyncio.sleep(0.02)
    sent = await bus.publish_many([{"type": "New", "i": i} for i in range(10)])
    with anyio.fail_after(WAIT_S):
        while follower.messages[-1].id != sent[-1]:
            await asyncio.sleep(0.005)
    await follower.stop()
    got = follower.messages
    assert all(m.type in ("Probe", "New") for m in got)
    assert [m.id for m in got if m.type == "New"] == sent
    assert_in_order(got)


@BOTH
async def test_read_waits_for_a_message_when_asked(kind: str, open_bus: Callable[..., Bus]) -> None:
    bus = open_bus(kind)
    mark = await bus.last_id()
    assert await bus.read(mark) == []
    assert await bus.read(NOW) == []
    assert await bus.read(mark, block_ms=50) == []  # nothing came: an empty answer, not an error

    async def publish_soon() -> str:
        await asyncio.sleep(0.1)
        return await bus.publish({"type": "Late"})

    publisher = asyncio.get_running_loop().create_task(publish_soon())
    got = await bus.read(mark, block_ms=10_000)
    late_id = await publisher
    assert ids(got) == [late_id]
    with pytest.raises(ValueError):
        await bus.read(mark, count=0)


@BOTH
async def test_reader_older_than_retention_gets_a_gap(kind: str, open_bus: Callable[..., Bus]) -> None:
    bus = open_bus(kind, retention=50)
    sent: list[str] = []
    for i in range(0, 600, 20):
        sent += await bus.publish_many([{"type": "Ping", "i": i + k} for k in range(20)])
    kept_ids = ids(await bus.read(None, count=1000))
    assert 50 <= len(kept_ids) < 600  # Redis trims in whole blocks: it may keep a little more
    assert kept_ids == sent[-len(kept_ids):]

    got = await bus.read(sent[0], count=1000)
    assert isinstance(got[0], Gap) and got[0].after_id == sent[0]
    assert ids(got[1:]) == kept_ids
    # going on from where the gap says is clean
    assert ids(await bus.read(got[0].resume_after, count=1000)) == kept_ids
    # a reader that still has its place gets no gap
    assert ids(await bus.read(kept_ids[0], count=1000)) == kept_ids[1:]

    follower = Follower(bus, sent[0])
    await follower.wait_for(len(kept_ids))
    await follower.stop()
    assert isinstance(follower.items[0], Gap)
    assert ids(follower.items[1:]) == kept_ids


@BOTH
async def test_id_from_before_a_restart_gets_a_gap(kind: str, open_bus: Callable[..., Bus]) -> None:
    """A client remembers an id the bus never issued (the bus restarted without its history)."""
    bus = open_bus(kind)
    sent = await bus.publish_many([{"type": "Ping", "i": i} for i in range(3)])
    stale = f"{id_key(sent[-1])[0] + 1000}-0"
    got = await bus.read(stale)
    assert isinstance(got[0], Gap) and got[0].after_id == stale
    assert ids(got[1:]) == sent


async def test_memory_subscriber_too_slow_for_retention_gets_a_gap(open_bus: Callable[..., Bus]) -> None:
    bus = open_bus("memory", retention=100)
    mark = await bus.last_id()
    it = bus.subscribe(mark)
    first_id = await bus.publish({"type": "Ping", "i": 0})
    assert (await anext(it)).id == first_id  # type: ignore[union-attr]
    await bus.publish_many([{"type": "Ping", "i": i} for i in range(1, 501)])
    gap = await anext(it)
    assert isinstance(gap, Gap) and gap.after_id == first_id
    rest = [await anext(it) for _ in range(100)]
    assert [m.payload["i"] for m in rest] == list(range(401, 501))  # type: ignore[union-attr]


async def test_memory_bus_closed_refuses_and_ends_subscriptions(open_bus: Callable[..., Bus]) -> None:
    bus = open_bus("memory")
    follower = Follower(bus, NOW)
    await asyncio.sleep(0)
    await bus.close()
    with anyio.fail_after(WAIT_S):
        await follower.task
    assert not await bus.ping()
    with pytest.raises(BusUnavailable):
        await bus.publish({"type": "Ping"})


# -- Redis: more than one reader, more than one process, outages ----------------------------------
async def test_redis_publish_many_is_contiguous_under_concurrency(open_bus: Callable[..., Bus]) -> None:
    bus = open_bus("redis")

    async def publisher(name: str) -> list[list[str]]:
        return [await bus.publish_many([{"type": "Ping", "who": name, "b": b, "k": k} for k in range(10)])
                for b in range(30)]

    batches = [b for result in await asyncio.gather(*(publisher(n) for n in "abc")) for b in result]
    order = ids(await read_all(bus, START))
    assert len(order) == 900
    for batch in batches:
        start = order.index(batch[0])
        assert order[start:start + 10] == batch


async def test_redis_many_local_subscribers_share_one_blocking_connection(
        open_bus: Callable[..., Bus], redis_admin: redis.Redis, stream: str) -> None:
    bus = open_bus("redis")
    mark = await bus.last_id()
    followers = [Follower(bus, mark) for _ in range(25)]
    sent = []
    for i in range(0, 1000, 50):
        sent += await bus.publish_many([{"type": "Ping", "i": i + k} for k in range(50)])
        await asyncio.sleep(0)
    for f in followers:
        assert [m.id for m in await f.wait_for(1000)] == sent
    tails = [c for c in redis_admin.client_list() if c["name"] == f"switchboard-bus-tail:{stream}"]
    assert len(tails) == 1, tails
    for f in followers:
        await f.stop()


async def test_redis_slow_subscriber_catches_up_from_redis_without_loss(open_bus: Callable[..., Bus]) -> None:
    """The local ring is small; Redis keeps more: a reader that falls off the ring reads from Redis."""
    bus = open_bus("redis", local_buffer=20, catchup_batch=30)
    mark = await bus.last_id()
    it = bus.subscribe(mark)
    warm = Follower(bus, NOW)  # keeps the local tail busy
    first = await bus.publish({"type": "Ping", "i": 0})
    assert (await anext(it)).id == first  # type: ignore[union-attr]
    sent = [first]
    for i in range(1, 400, 25):
        sent += await bus.publish_many([{"type": "Ping", "i": i + k} for k in range(25)])
        await asyncio.sleep(0.001)
    got = [await anext(it) for _ in range(len(sent) - 1)]
    assert [m.id for m in got] == sent[1:]  # type: ignore[union-attr]
    await warm.stop()


async def test_redis_subscriber_resumes_after_its_connections_are_killed(
        open_bus: Callable[..., Bus], redis_admin: redis.Redis, stream: str) -> None:
    bus = open_bus("redis")
    follower = Follower(bus, await bus.last_id())
    sent = await bus.publish_many([{"type": "Ping", "i": i} for i in range(100)])
    await follower.wait_for(100)
    for round_ in range(3):
        killed = 0
        for client in redis_admin.client_list():
            if client["name"] in (f"switchboard-bus-tail:{stream}", f"switchboard-bus:{stream}"):
                killed += redis_admin.client_kill_filter(_id=client["id"])
        assert killed >= 1
        with anyio.fail_after(WAIT_S):
            while True:  # the first command on a killed pooled connection may fail: the caller retries
                try:
                    sent += await bus.publish_many([{"type": "Ping", "i": 100 * (round_ + 1) + i} for i in range(100)])
                    break
                except BusUnavailable:
                    await asyncio.sleep(0.05)
    got = await follower.wait_for(400)
    await asyncio.sleep(0.2)  # give a duplicate, if any, the time to show up
    await follower.stop()
    assert [m.id for m in follower.messages] == sent
    assert [m.payload["i"] for m in got] == list(range(400))


async def test_redis_new_process_resumes_from_the_last_id_it_saw(open_bus: Callable[..., Bus]) -> None:
    first = open_bus("redis")
    sent = await first.publish_many([{"type": "Ping", "i": i} for i in range(100)])
    seen = await first.read(START, count=60)
    last_seen = seen[-1].id  # type: ignore[union-attr]
    await first.close()
    sent += await open_bus("redis").publish_many([{"type": "Ping", "i": i} for i in range(100, 150)])

    second = open_bus("redis")
    follower = Follower(second, last_seen)
    got = await follower.wait_for(90)
    sent += await second.publish_many([{"type": "Ping", "i": i} for i in range(150, 160)])
    got = await follower.wait_for(100)
    await follower.stop()
    assert [m.id for m in got] == sent[60:]
    assert not any(isinstance(m, Gap) for m in follower.items)


async def test_redis_second_os_process_sees_every_event_in_order(open_bus: Callable[..., Bus], stream: str) -> None:
    bus = open_bus("redis")
    sent = await bus.publish_many([{"type": "Before", "i": i} for i in range(50)])
    total = 1050

    async def publish_meanwhile() -> None:  # while the other process starts up and follows
        for i in range(50, total, 100):
            sent.extend(await bus.publish_many([{"type": "During", "i": i + k} for k in range(100)]))
            await asyncio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(publish_meanwhile)
        with anyio.fail_after(60):
            proc = await anyio.run_process(
                [sys.executable, "-m", "engine.commands.follow", "--redis-url", REDIS_URL, "--stream", stream,
                 "--from-id", START, "--count", str(total)], cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [line["id"] for line in lines] == sent
    assert [line["payload"]["i"] for line in lines] == list(range(total))
    assert lines[0]["type"] == "Before" and lines[-1]["type"] == "During"


async def test_follow_command_reports_a_gap_then_goes_on(open_bus: Callable[..., Bus], stream: str) -> None:
    bus = open_bus("redis", retention=10)
    sent = await bus.publish_many([{"type": "Ping", "i": i} for i in range(300)])
    kept = [m.id for m in await bus.read(None, count=1000)]  # type: ignore[union-attr]
    proc = await anyio.run_process(
        [sys.executable, "-m", "engine.commands.follow", "--redis-url", REDIS_URL, "--stream", stream,
         "--from-id", sent[0], "--count", str(len(kept))], cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert lines[0] == {"gap": True, "after_id": sent[0], "resume_after": id_before(kept[0])}
    assert [line["id"] for line in lines[1:]] == kept
    assert b"are gone" in proc.stderr


def test_follow_command_needs_redis(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SWITCHBOARD_REDIS_URL", raising=False)
    assert follow_command.main([]) == 2
    assert "no Redis configured" in capsys.readouterr().err
    assert follow_command.main(["--redis-url", REDIS_URL, "--from-id", "yesterday"]) == 2
    assert "not a bus message id" in capsys.readouterr().err


async def test_redis_down_publish_fails_fast_and_ping_says_so(open_bus: Callable[..., Bus]) -> None:
    bus = open_bus("redis", url=CLOSED_PORT_URL)
    assert await bus.ping() is False
    with pytest.raises(BusUnavailable):
        await bus.publish({"type": "Ping"})
    with pytest.raises(BusUnavailable):
        await bus.publish_many([{"type": "Ping"}, {"type": "Ping"}])
    with pytest.raises(BusUnavailable):
        await bus.read(START)
    with pytest.raises(BusUnavailable):
        await bus.last_id()
    # a subscriber does not fail: it waits for Redis, and ends cleanly when the bus is closed
    follower = Follower(bus, START)
    await asyncio.sleep(0.2)
    assert not follower.task.done()
    await bus.close()
    with anyio.fail_after(WAIT_S):
        await follower.task
    assert follower.items == []


async def test_redis_outage_and_return(open_bus: Callable[..., Bus], relay: RedisRelay) -> None:
    bus = open_bus("redis", url=relay.url)
    other_node = open_bus("redis")  # reaches Redis directly, keeps publishing through the outage
    follower = Follower(bus, await bus.last_id())
    sent = await bus.publish_many([{"type": "Ping", "i": i} for i in range(50)])
    await follower.wait_for(50)
    assert await bus.ping()

    await relay.stop()
    assert await bus.ping() is False
    with pytest.raises(BusUnavailable):
        await bus.publish({"type": "Ping", "i": -1})
    sent += await other_node.publish_many([{"type": "Ping", "i": i} for i in range(50, 100)])
    await asyncio.sleep(0.3)  # the follower is retrying meanwhile
    assert len(follower.messages) == 50

    await relay.start()
    with anyio.fail_after(WAIT_S):
        while not await bus.ping():
            await asyncio.sleep(0.05)
    sent += await bus.publish_many([{"type": "Ping", "i": i} for i in range(100, 150)])
    got = await follower.wait_for(150)
    await asyncio.sleep(0.2)
    await follower.stop()
    assert ids(follower.items) == sent  # no loss, no duplicate, no gap
    assert [m.payload["i"] for m in got] == list(range(150))


async def test_redis_that_comes_back_empty_is_a_gap(
        open_bus: Callable[..., Bus], relay: RedisRelay, redis_admin: redis.Redis, stream: str) -> None:
    """Redis restarted without its data: followers are told to resync, then get the new events."""
    bus = open_bus("redis", url=relay.url)
    follower = Follower(bus, await bus.last_id())
    before = await bus.publish_many([{"type": "Ping", "i": i} for i in range(20)])
    await follower.wait_for(20)
    await relay.stop()
    redis_admin.delete(stream)
    after = [redis_admin.xadd(stream, {"type": "Ping", "payload": json.dumps({"i": i})}) for i in range(5)]
    await relay.start()
    got = await follower.wait_for(25)
    await follower.stop()
    assert [m.id for m in got] == before + after
    gaps = [i for i, item in enumerate(follower.items) if isinstance(item, Gap)]
    assert gaps == [20] and follower.items[20].after_id == before[-1]  # type: ignore[union-attr]
