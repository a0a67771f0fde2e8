"""The engine's single writer: it owns the router, runs every command, journals and publishes events.

Order of a command: fire due timers, run the command, append all resulting events to the journal in one
transaction, and only then let anybody see them (outbox -> bus -> WebSockets). If the store write fails the
in-memory router may be ahead of the store, so it is marked stale and rebuilt from the store (snapshot +
journal tail) before the next command: nothing half-written is ever served. Everything runs on the event
loop thread; journal writes are synchronous on purpose, so two commands never interleave.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from dataclasses import dataclass
from typing import Any, Callable

from acd.events import (
    ContactOffered,
    ContactTransferred,
    Event,
    OfferMissed,
    WrapUpCompleted,
    ContactAbandoned,
    to_dict,
)
from acd.model import CenterConfig
from acd.router import Router
from engine.bus import Bus, BusUnavailable
from engine.store import StoreUnavailable
from engine.store.journal import Journal

log = logging.getLogger("switchboard.core")

SNAPSHOT_FORMAT = "router-pickle-1"
CONFIG_EVENT = "ConfigReloaded"


class EngineUnavailable(Exception):
    """The store or the bus is down: the command was not run (maps to HTTP 503)."""


@dataclass(frozen=True, slots=True)
class Committed:
    seq: int
    event: Event
    payload: dict[str, Any]


Command = Callable[[Router, float], list[Event]]


class Core:
    def __init__(self, center: CenterConfig, journal: Journal, bus: Bus, *, clock: Callable[[], float] = time.time,
                 snapshot_every: int = 5000):
        self.center = center
        self.journal = journal
        self.bus = bus
        self.clock = clock
        self.snapshot_every = snapshot_every
        self.router = Router(center)
        self.last_seq = 0
        self.stale = True  # no state loaded yet
        self.bus_ok = True
        self._holder: dict[str, str] = {}  # contact -> agent that holds or is offered it
        self._outbox: asyncio.Queue[Committed] | None = None
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
        holder: dict[str, str] = {}
        last = after
        batch: list[Event] = []
        for seq, item in self.journal.load_events(after_seq=after):
            last = seq
            if isinstance(item, dict) and item.get("type") == CONFIG_EVENT:
                router.replay_more(batch)
                batch = []
                router = router.reconfigured(_center_from_payload(item))
                router.replay_more([])
                continue
            batch.append(item)
        router.replay_more(batch)
        for c in router.contacts.values():
            if c.agent is not None:
                holder[c.id] = c.agent
        if router.center != self.center:
            # the file changed while we were down: carry the state over to it
            router = router.reconfigured(self.center)
        self.router, self.last_seq, self._holder = router, last, holder
        self.stale = False
        log.info("recovered", extra={"seq": last, "contacts": len(router.contacts)})

    def _ensure_fresh(self) -> None:
        if not self.stale:
            return
        try:
            self.recover()
        except StoreUnavailable as exc:
            raise EngineUnavailable(f"store unavailable: {exc}") from None

    # ------------------------------------------------------------------------------------------
    # commands
    def execute(self, command: Command) -> list[Committed]:
        """Run one command under the current time; journal what it caused; return what was committed.

        Raises the router's typed errors (nothing changed, though due timers still fire and are kept),
        or EngineUnavailable when the store or bus is down."""
        self._ensure_fresh()
        if not self.bus_ok:
            raise EngineUnavailable("event bus unavailable")
        now = self.clock()
        started = time.perf_counter()
        fired = self.router.tick(now)
        try:
            caused = command(self.router, now)
        except Exception:
            self._commit(fired)
            raise
        elapsed = time.perf_counter() - started
        for observe in self.latency_observers:
            observe(elapsed)
        return self._commit(fired + caused)

    def tick(self) -> list[Committed]:
        if self.stale:
            return []
        due = self.router.next_due()
        if due is None or due > self.clock():
            return []
        return self.execute(lambda r, now: [])

    def reload(self, center: CenterConfig, raw: dict[str, Any]) -> list[Committed]:
        """Switch to a new configuration without a restart; refused (ConfigError) if it would strand work."""
        self._ensure_fresh()
        now = self.clock()
        fired = self.router.tick(now)
        self._commit(fired)
        new_router = self.router.reconfigured(center)  # raises ConfigError, nothing changed
        marker = {"type": CONFIG_EVENT, "t": now, "config": raw}
        try:
            seq = self.journal.append_marker(marker)
        except StoreUnavailable as exc:
            self.stale = True
            raise EngineUnavailable(f"store unavailable: {exc}") from None
        self.router, self.center, self.last_seq = new_router, center, seq
        return self._commit(self.router.rebalance(now))

    def _commit(self, events: list[Event]) -> list[Committed]:
        if not events:
            return []
        try:
            seqs = self.journal.append(events)
        except StoreUnavailable as exc:
            self.stale = True  # the router ran ahead of the store: rebuild before the next command
            raise EngineUnavailable(f"store unavailable: {exc}") from None
        committed = [Committed(seq, e, self._payload(seq, e)) for seq, e in zip(seqs, events)]
        self.last_seq = seqs[-1]
        if self._outbox is not None:
            for item in committed:
                self._outbox.put_nowait(item)
        for listener in self.listeners:
            listener(committed)
        self._since_snapshot += len(events)
        if self._since_snapshot >= self.snapshot_every:
            self._snapshot()
        return committed

    def _snapshot(self) -> None:
        try:
            blob = pickle.dumps(self.router, protocol=pickle.HIGHEST_PROTOCOL).hex()
            self.journal.write_snapshot(self.last_seq, {"format": SNAPSHOT_FORMAT, "router": blob})
            self._since_snapshot = 0
        except StoreUnavailable:
            log.warning("snapshot skipped: store unavailable")

    def _payload(self, seq: int, e: Event) -> dict[str, Any]:
        """What subscribers see: the event, its journal seq, and which agents it concerns."""
        data = to_dict(e)
        data["seq"] = seq
        cid = getattr(e, "contact", None)
        agents = {a for a in (getattr(e, "agent", None), getattr(e, "from_agent", None),
                              getattr(e, "to_agent", None)) if a}
        if cid is not None:
            held = self._holder.get(cid)
            if held:
                agents.add(held)
            if isinstance(e, ContactOffered):
                self._holder[cid] = e.agent
                c = self.router.contacts[cid]
                data["contact_info"] = {
                    "queue": c.queue, "channel": c.channel.value, "priority": c.priority,
                    "attributes": c.attributes, "enqueued_at": c.enqueued_at,
                    "history": c.history[-10:],
                }
            elif isinstance(e, (OfferMissed, ContactAbandoned, ContactTransferred, WrapUpCompleted)):
                self._holder.pop(cid, None)
        data["agents"] = sorted(agents)
        return data

    # ------------------------------------------------------------------------------------------
    # background work
    async def run_publisher(self) -> None:
        """Publish committed events to the bus in journal order; on a bus failure keep them and retry."""
        self._outbox = asyncio.Queue()
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

    async def run_ticker(self, interval_s: float) -> None:
        """Fire ACD timers (offer timeouts, widening, wrap-up) and retry recovery after an outage."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self.stale:
                    self._ensure_fresh()
                self.tick()
            except EngineUnavailable:
                pass
            except Exception:  # never let the ticker die: log and go on
                log.exception("tick failed")


def _center_from_payload(marker: dict[str, Any]) -> CenterConfig:
    from acd.config import CENTER_FIELDS, load_center

    raw = marker["config"]
    return load_center({k: v for k, v in raw.items() if k in CENTER_FIELDS})
