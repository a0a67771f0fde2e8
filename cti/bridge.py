"""The CTI bridge: on every committed offer, look the caller up in the CRM and screen-pop the agent.

It listens to the core's committed events (`Core.listeners`) and, for each `ContactOffered`, starts a
lookup (phone from the `caller_id`/`ani` attribute, e-mail from `email`/`from`) in its own task, so the
offer itself is never held up by the CRM. When the lookup returns it publishes one bus message:

    {"type": "cti.screen_pop", "contact", "agent", "agents": [agent], "crm", "status", "message",
     "people": [...], "cases": [...], "caller": {"phone", "email"}, "offered_at", "popped_at"}

status is "matched", "no_match" or "unavailable" (message "CRM unavailable": timed out, down, garbage).
A pop is a fact about the CRM, not a state change of the ACD: it is not journaled and has no `seq`.
It is published only after its offer is (the bridge follows the bus to know), so a desktop always
sees the offer first. Nothing is cached: every pop, and every `GET .../pop`, asks the CRM afresh, so a
case filed during the call shows on the next one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acd.events import ContactOffered
from cti.connectors.base import Connector, CrmCase, CrmError, CrmUnavailable, Person
from engine.bus import Bus, BusMessage, BusUnavailable
from engine.core import Committed, Core

log = logging.getLogger("switchboard.cti")

POP_TYPE = "cti.screen_pop"
UNAVAILABLE_MESSAGE = "CRM unavailable"
MAX_PEOPLE = 5  # a shared family phone matches a few people; a pop with 50 helps nobody
MAX_CASES_PER_PERSON = 10
PUBLISH_WAIT_S = 10.0  # how long a pop waits for its offer to reach the bus before going out anyway
REMEMBERED_OFFERS = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    phone: str | None
    email: str | None

    @classmethod
    def of(cls, attributes: dict[str, Any]) -> Caller:
        def text(*keys: str) -> str | None:
            for k in keys:
                v = attributes.get(k)
                if isinstance(v, str) and v.strip():
                    return v.strip()
            return None

        return cls(phone=text("caller_id", "ani"), email=text("email", "from"))


@dataclass(frozen=True, slots=True)
class Offer:
    contact: str
    agent: str
    seq: int
    offered_at: float
    channel: str | None
    caller: Caller


class Published:
    """The highest journal seq seen on the bus, and waiters for a given seq."""

    def __init__(self) -> None:
        self.seq = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def saw(self, seq: int) -> None:
        if seq <= self.seq:
            return
        self.seq = seq
        keep = []
        for want, fut in self._waiters:
            if want <= seq:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((want, fut))
        self._waiters = keep

    async def wait(self, seq: int, timeout: float) -> bool:
        if seq <= self.seq:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters = [(s, f) for s, f in self._waiters if f is not fut]


class CtiBridge:
    def __init__(self, core: Core, connector: Connector, *, bus: Bus | None = None,
                 clock: Callable[[], float] | None = None):
        self.core = core
        self.connector = connector
        self.bus = bus or core.bus
        self.clock = clock or core.clock
        self.published = Published()
        self.offers: collections.OrderedDict[str, Offer] = collections.OrderedDict()  # contact -> last offer
        self._tasks: set[asyncio.Task[Any]] = set()
        self._follower: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._follower = asyncio.create_task(self._follow(), name="cti-follow")
        self.core.listeners.append(self._on_committed)

    async def stop(self) -> None:
        if self._on_committed in self.core.listeners:
            self.core.listeners.remove(self._on_committed)
        tasks = [*self._tasks, *([self._follower] if self._follower else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.connector.close()
        except Exception:
            log.exception("CRM connector did not close cleanly")

    # ------------------------------------------------------------------------------------------
    def _on_committed(self, items: list[Committed]) -> None:
        """Called by the core, in journal order, once events are durable: never block here."""
        for item in items:
            if not isinstance(item.event, ContactOffered):
                continue
            info = item.payload.get("contact_info") or {}
            offer = Offer(contact=item.event.contact, agent=item.event.agent, seq=item.seq,
                          offered_at=item.event.t, channel=info.get("channel"),
                          caller=Caller.of(info.get("attributes") or {}))
            self.offers[offer.contact] = offer
            self.offers.move_to_end(offer.contact)
            while len(self.offers) > REMEMBERED_OFFERS:
                self.offers.popitem(last=False)
            task = asyncio.create_task(self._pop(offer), name=f"cti-pop-{offer.contact}")
            self._tasks.add(task)
            task.add_done_callback(self._done)

    async def _pop(self, offer: Offer) -> None:
        pop = await self.screen_pop(offer.contact, offer.agent, offer.caller, offered_at=offer.offered_at,
                                    channel=offer.channel)
        if not await self.published.wait(offer.seq, PUBLISH_WAIT_S):
            log.warning("offer not seen on the bus in time; screen-pop sent anyway",
                        extra={"contact": offer.contact})
        pop["popped_at"] = self.clock()
        try:
            await self.bus.publish(pop)
        except BusUnavailable as exc:
            # the desktop fetches it again (GET /contacts/{id}/pop) when its socket comes back
            log.warning("screen-pop not published: bus unavailable", extra={"contact": offer.contact,
                                                                            "error": str(exc)})

    async def screen_pop(self, contact: str, agent: str | None, caller: Caller, *, offered_at: float | None,
                         channel: str | None) -> dict[str, Any]:
        """Ask the CRM who is calling and what they have open; never raises for a CRM failure."""
        people: list[Person] = []
        cases: list[dict[str, Any]] = []
        message = None
        try:
            if caller.phone or caller.email:
                people = (await self.connector.lookup(phone=caller.phone, email=caller.email))[:MAX_PEOPLE]
                found = await asyncio.gather(*(self.connector.open_cases(p.id, limit=MAX_CASES_PER_PERSON)
                                               for p in people))
                cases = [_case(c, p) for p, open_cases in zip(people, found) for c in open_cases]
            status = "matched" if people else "no_match"
        except CrmError as exc:
            status, message, people, cases = "unavailable", UNAVAILABLE_MESSAGE, [], []
            log.warning("CRM lookup failed", extra={"contact": contact, "crm": self.connector.name,
                                                     "unavailable": isinstance(exc, CrmUnavailable),
                                                     "error": str(exc)})
        except Exception as exc:  # a connector bug must not cost the agent the contact: say unavailable
            status, message, people, cases = "unavailable", UNAVAILABLE_MESSAGE, [], []
            log.exception("CRM lookup crashed", extra={"contact": contact, "crm": self.connector.name,
                                                        "error": str(exc)})
        return {"type": POP_TYPE, "contact": contact, "agent": agent, "agents": [agent] if agent else [],
                "channel": channel, "crm": self.connector.name, "status": status, "message": message,
                "caller": {"phone": caller.phone, "email": caller.email},
                "people": [p.to_dict() for p in people], "cases": cases,
                "offered_at": offered_at, "popped_at": None}

    # ------------------------------------------------------------------------------------------
    async def _follow(self) -> None:
        """Track which journal seqs the bus carries, so a pop never overtakes its offer."""
        after = "$"
        while True:
            try:
                async for msg in self.bus.subscribe(after_id=after):
                    if isinstance(msg, BusMessage):
                        after = msg.id
                        seq = msg.payload.get("seq")
                        if isinstance(seq, int):
                            self.published.saw(seq)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("CTI bridge lost the bus; retrying")
                await asyncio.sleep(0.5)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("screen-pop failed", exc_info=task.exception())


def _case(c: CrmCase, person: Person) -> dict[str, Any]:
    return {**c.to_dict(), "person_id": person.id, "person_name": person.name}


def connector_for(app_state: Any) -> Connector:
    """The site's CRM connector (settings.crm; builtin by default), behind a timeout and circuit breaker."""
    from cti.cases import for_app
    from cti.connectors import make_connector

    return make_connector(app_state.settings, for_app(app_state))


async def start_bridge(app: Any) -> CtiBridge:
    """Assembly for `engine/app.py` lifespan."""
    bridge = CtiBridge(app.state.core, connector_for(app.state))
    await bridge.start()
    return bridge
