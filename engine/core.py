"""The engine's single writer: it owns the router, runs every command, journals and publishes events.

A command runs on the event-loop thread: due timers fire, the command runs, and its events go to the
journal writer (group commit: many commands per disk flush, in the router's order). The caller is
answered, and the events are published (outbox -> bus -> WebSockets), only once they are durable.
If a journal write fails, the router has run ahead of the store: it is marked stale and rebuilt from the
store (snapshot + journal tail) before the next command, and every command caught in between gets 503.
Nobody is ever told about a state the store does not have.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from acd import native
from acd.errors import ConfigError
from acd.events import (
    EVENT_TYPES,
    ConsultEnded,
    ContactAbandoned,
    ContactOffered,
    ContactTransferred,
    Event,
    OfferMissed,
    WrapUpCompleted,
    to_dict,
)
from acd.model import CenterConfig
from acd.router import Router
from engine.bus import Bus, BusUnavailable
from engine.store import StoreUnavailable
from engine.store.store import Store
from engine.store.writer import JournalWriter

log = logging.getLogger("switchboard.core")

# bump when the router's pickled shape changes (old ones: full replay); a compiled build and the pure one
# pickle differently, so each replays the other's snapshots rather than load them
SNAPSHOT_FORMAT = f"router-pickle-9-{'mypyc' if native.compiled() else 'pure'}"


@dataclass(frozen=True, slots=True)
class ConfigReloaded(Event):
    """Journaled when the site configuration changes, so replay switches configuration at that point."""

    config: dict[str, Any]


EVENT_TYPES.setdefault(ConfigReloaded.__name__, ConfigReloaded)


class EngineUnavailable(Exception):
    """The store or the bus is down: the command was not run, or not kept (maps to HTTP 503)."""


@dataclass(frozen=True, slots=True)
class Committed:
    seq: int
    event: Event
    payload: dict[str, Any]


Command = Callable[[Router, float], list[Event]]


class Core:
    def __init__(self, center: CenterConfig, store: Store, bus: Bus, *, clock: Callable[[], float] = time.time,
                 snapshot_every: int = 5000):
        self.center = center
        self.store = store
        self.journal = store.journal
        self.writer = JournalWriter(store.journal)
        self.bus = bus
        self.clock = clock
        self.snapshot_every = snapshot_every
        self.router = Router(center)
        self.last_seq = 0
        self.stale = True  # nothing loaded yet
        self.bus_ok = True
        self.store_writable = True  # False from a failed journal write until a write goes through again
        self._holder: dict[str, str] = {}  # contact -> agent that holds or is offered it
        self._outbox: asyncio.Queue[Committed] = asyncio.Queue()
        self._since_snapshot = 0
        self.listeners: list[Callable[[list[Committed]], None]] = []  # metrics and the like
        self.latency_observers: list[Callable[[float], None]] = []

    # ------------------------------------------------------------------------------------------
    # recovery
    def recover(self) -> None:
        """Rebuild the router from the latest snapshot and the journal after it."""
        router = Router(self.center)
        after = 0
        snap = self.journal.latest_snapshot()
        if snap is not None:
            seq, payload = snap
            if payload.get("format") == SNAPSHOT_FORMAT:
                router = pickle.loads(bytes.fromhex(payload["router"]))
                after = seq
        last = after
        batch: list[Event] = []
        for seq, event in self.journal.load_events(after_seq=after):
            last = seq
            if isinstance(event, ConfigReloaded):
                router.replay_more(batch)
                batch = []
                router = router.reconfigured(_center_from(event.config))
                continue
            batch.append(event)
        router.replay_more(batch)
        self._holder = {c.id: c.agent for c in router.contacts.values() if c.agent is not None}
        self.router, self.last_seq, self.stale = router, last, False
        self.writer.reset()
        if router.center != self.center or last == 0:
            # the file changed while we were down: carry the state over to it; or the journal is new: record
            # the configuration its events run under, so a replay after a reload that drops a queue or an
            # agent never applies the earlier events without them (journaled on first command)
            self._pending_reconfigure = True
        log.info("recovered", extra={"seq": last, "contacts": len(router.contacts)})

    _pending_reconfigure = False

    def ensure_fresh(self) -> None:
        """Rebuild the router if a failed write left it ahead of the store, so no reader sees state the
        store does not have; EngineUnavailable while the store is away."""
        self._ensure_fresh()

    def _ensure_fresh(self) -> None:
        if not self.stale:
            return
        try:
            self.recover()
        except StoreUnavailable as exc:
            raise EngineUnavailable(f"store unavailable: {exc}") from None

    # ------------------------------------------------------------------------------------------
    # commands
    async def execute(self, command: Command) -> list[Committed]:
        """Run one command now; return its committed events once durable.

        Raises the router's typed errors (nothing changed by the command, though timers that came due
        still fire and are kept), or EngineUnavailable when the store or bus is down."""
        self._ensure_fresh()
        if not self.bus_ok:
            raise EngineUnavailable("event bus unavailable")
        if self._pending_reconfigure:
            await self._adopt_file_config()
        now = self.clock()
        started = time.perf_counter()
        fired = self.router.tick(now)
        try:
            caused = command(self.router, now)
        except Exception:
            if fired:
                await self._commit(fired)
            raise
        elapsed = time.perf_counter() - started
        for observe in self.latency_observers:
            observe(elapsed)
        return await self._commit(fired + caused)

    async def tick(self) -> list[Committed]:
        if self.stale:
            return []
        due = self.router.next_due()
        if due is None or due > self.clock():
            return []
        return await self.execute(lambda r, now: [])

    async def reload(self, center: CenterConfig) -> list[Committed]:
        """Switch to a new configuration without a restart; refused (ConfigError) if it would strand work."""
        self._ensure_fresh()
        return await self._reconfigure(center)

    async def _reconfigure(self, center: CenterConfig) -> list[Committed]:
        now = self.clock()
        new_router = self.router.reconfigured(center)  # raises ConfigError; nothing changed
        self.router, self.center = new_router, center
        self._pending_reconfigure = False
        # the parsed centre, not the file: the file may hold (demo) passwords that must not be journaled
        marker = ConfigReloaded(now, _raw_of(center))
        return await self._commit([marker] + new_router.rebalance(now))

    async def adopt_pending_config(self) -> None:
        """After `recover()` at start: put the site file in force now (journaled), not at the first command."""
        if self._pending_reconfigure:
            await self._adopt_file_config()

    async def _adopt_file_config(self) -> None:
        try:
            await self._reconfigure(self.center)
        except ConfigError as exc:
            # the file changed while we were down in a way that would strand work: refuse it as a bad
            # reload is refused, and go on with the configuration the journal holds
            log.error("site file refused: it would strand live work; running on the journaled configuration",
                      extra={"error": str(exc)})
            self._pending_reconfigure = False
            self.center = self.router.center

    async def _commit(self, events: list[Event]) -> list[Committed]:
        if not events:
            return []
        future: Future[list[int]] = self.writer.submit(events)
        # publish from the writer's completion, which runs in journal order
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Committed]] = loop.create_future()

        def on_done(f: Future[list[int]]) -> None:
            loop.call_soon_threadsafe(self._committed, events, f, done)

        future.add_done_callback(on_done)
        return await done

    def _committed(self, events: list[Event], f: Future[list[int]], done: asyncio.Future[list[Committed]]) -> None:
        error = f.exception()
        if error is not None:
            self.stale = True  # the router ran ahead of the store: rebuild before the next command
            self.store_writable = False
            if not done.done():
                done.set_exception(EngineUnavailable(f"store unavailable: {error}"))
            return
        seqs = f.result()
        self.store_writable = True
        committed = [Committed(seq, e, self._payload(seq, e)) for seq, e in zip(seqs, events)]
        self.last_seq = seqs[-1]
        for item in committed:
            self._outbox.put_nowait(item)
        for listener in self.listeners:
            try:
                listener(committed)
            except Exception:
                log.exception("listener failed")
        self._since_snapshot += len(events)
        if self._since_snapshot >= self.snapshot_every and not self.stale:
            self._snapshot()
        if not done.done():
            done.set_result(committed)

    def _snapshot(self) -> None:
        """Pickle the router at `last_seq`, only when nothing is in flight (so it equals the store)."""
        if self.writer_busy():
            return
        try:
            blob = pickle.dumps(self.router, protocol=pickle.HIGHEST_PROTOCOL).hex()
            self.journal.write_snapshot(self.last_seq, {"format": SNAPSHOT_FORMAT, "router": blob})
            self._since_snapshot = 0
        except StoreUnavailable:
            log.warning("snapshot skipped: store unavailable")

    def writer_busy(self) -> bool:
        return bool(self.writer._pending)

    def _payload(self, seq: int, e: Event) -> dict[str, Any]:
        """What subscribers see: the event, its journal seq, and which agents it concerns."""
        data = to_dict(e)
        data["seq"] = seq
        if isinstance(e, ConfigReloaded):
            data.pop("config", None)  # subscribers need the fact, not the file
            data["agents"] = []
            return data
        cid = getattr(e, "contact", None)
        agents = {a for a in (getattr(e, "agent", None), getattr(e, "from_agent", None),
                              getattr(e, "to_agent", None)) if a}
        if cid is not None:
            held = self._holder.get(cid)
            if held:
                agents.add(held)
            if isinstance(e, ContactOffered):
                self._holder[cid] = e.agent
                c = self.router.contacts.get(cid)
                if c is not None:
                    data["contact_info"] = {
                        "queue": c.queue, "channel": c.channel.value, "priority": c.priority,
                        "attributes": c.attributes, "enqueued_at": c.enqueued_at,
                        "history": c.history[-10:],
                    }
            elif isinstance(e, (OfferMissed, ContactAbandoned, ContactTransferred, WrapUpCompleted)):
                self._holder.pop(cid, None)
            elif isinstance(e, ConsultEnded) and e.outcome == "completed" and e.to_agent:
                self._holder[cid] = e.to_agent  # a warm transfer: the consulted agent holds it now
        data["agents"] = sorted(agents)
        return data

    # ------------------------------------------------------------------------------------------
    # background work
    async def run_publisher(self) -> None:
        """Publish committed events to the bus in journal order; on a bus failure keep them and retry."""
        pending: Committed | None = None
        while True:
            item = pending or await self._outbox.get()
            try:
                await self.bus.publish(item.payload)
                pending = None
                if not self.bus_ok:
                    log.info("bus back")
                self.bus_ok = True
            except BusUnavailable:
                if self.bus_ok:
                    log.warning("bus unavailable: holding events")
                self.bus_ok = False
                pending = item
                await asyncio.sleep(0.5)

    async def run_interval_saver(self, every_s: float = 60.0) -> None:
        """Keep the store's interval statistics (for reports and BI) up to date with the router's."""
        while True:
            await asyncio.sleep(every_s)
            if self.stale:
                continue
            now = self.clock()
            stats = self.router.stats_as_of(now)
            since = (stats.interval(now) - 1) * stats.interval_s  # this interval and the one before
            reports = [r for q in stats.queues for r in stats.interval_report(q) if r["interval_start"] >= since]
            try:
                await asyncio.to_thread(self.store.intervals.upsert, reports)
            except StoreUnavailable:
                log.warning("interval statistics not saved: store unavailable")

    async def run_ticker(self, interval_s: float) -> None:
        """Fire ACD timers (offer timeouts, widening, wrap-up) and retry recovery after an outage."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self.stale:
                    self._ensure_fresh()
                if not self.store_writable:
                    await self._probe_writes()
                await self.tick()
            except EngineUnavailable:
                pass
            except Exception:  # never let the ticker die: log and go on
                log.exception("tick failed")

    async def _probe_writes(self) -> None:
        """After a failed write, try an empty write transaction: readers may still get through (SQLite
        in WAL mode while another process holds the write lock), so only this tells writes work again."""
        def probe() -> None:
            with self.store.db.write():
                pass

        try:
            await asyncio.to_thread(probe)
            self.store_writable = True
        except StoreUnavailable:
            pass

    def close(self) -> None:
        self.writer.close(timeout=5)


def _center_from(raw: dict[str, Any]) -> CenterConfig:
    from acd.config import CENTER_FIELDS, load_center

    return load_center({k: v for k, v in raw.items() if k in CENTER_FIELDS})


def _raw_of(center: CenterConfig) -> dict[str, Any]:
    """Plain data for a CenterConfig (journaled with a reload, read back by `_center_from`)."""
    return {
        "skills": list(center.skills),
        "queues": {q.id: {
            "name": q.name, "strategy": q.strategy.value, "sl_threshold_s": q.sl_threshold_s,
            "skills": {r.skill: r.min_level for r in q.skills}, "groups": list(q.groups),
            "steps": [{"after_s": s.after_s, "level_drop": s.level_drop, "add_groups": list(s.add_groups),
                       "overflow_queues": list(s.overflow_queues)} for s in q.steps],
            "offer_timeout_s": q.offer_timeout_s, "wrap_up_s": q.wrap_up_s, "wrap_up_codes": list(q.wrap_up_codes),
            "wrap_up_code_required": q.wrap_up_code_required, "priority_boost_per_s": q.priority_boost_per_s,
            "short_abandon_s": q.short_abandon_s, "preferred_agent_timeout_s": q.preferred_agent_timeout_s,
            "random_seed": q.random_seed, "linear_order": list(q.linear_order)} for q in center.queues.values()},
        "agents": {a.id: {"name": a.name, "skills": dict(a.skills),
                          "capacity": {ch.value: n for ch, n in a.capacity.items()}, "groups": list(a.groups)}
                   for a in center.agents.values()},
        "blocks": {ch.value: sorted(t.value for t in targets) for ch, targets in center.blocks.items()},
        "rona_misses": center.rona_misses,
        "decline_retry_s": center.decline_retry_s,
        "not_ready_reasons": list(center.not_ready_reasons),
        "interval_s": center.interval_s,
        # local days: the zone, or the fixed offset (the centre takes one or the other)
        **({"timezone": center.timezone} if center.timezone else {"day_offset_s": center.day_offset_s}),
    }
