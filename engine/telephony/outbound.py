"""Outbound calls: click-to-dial and callbacks, always through the dial plan (the toll-fraud guard).

Both start at the agent: their station rings first, so nobody outside hears a phone ring with no one on
the line. When the agent answers, the outside number is dialled on the trunk (the dial plan's URI, the
site's caller id) while the agent hears ringback; when it answers, the two legs are bridged. Either
side's hang-up ends both.

ACD treatment:
- click-to-dial: the agent is made not ready with the reason `outbound` for the whole call, so no voice
  call can be offered to them meanwhile (supervisors see why), and put back as they were (ready, or their
  old not-ready reason) when it ends, unless they changed their state themselves in between. An agent
  with an offer or a live call cannot dial (409).
- callback: the ACD offers the `callback` contact like any other; the station rings for as long as the
  offer lasts (no answer: the ACD's RONA). On answer the offer is accepted and the resident dialled. If the
  resident does not answer (busy, no answer, unreachable), the contact ends (wrap-up follows) and a new
  callback is booked `callback_retry_s` later with its old place (same age), up to `callback_attempts`
  attempts in all (`callback_attempt` and `callback_of` ride in its attributes). A number the dial plan
  refuses is never dialled and the agent's station never rings: the offer is accepted and the contact ended
  at once, the number, category and reason logged.

Legs: the back end reports every leg to the call controller (`calls.py`), which hands the legs it does not
know to `owns()`/`answered()`/`ended()` here. Leg ids are chosen before originating, so an event can never
arrive for a leg this module does not know yet.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from acd import errors as acd_errors
from acd.events import ContactAbandoned, ContactEnded, ContactOffered, ContactTransferred, OfferMissed
from acd.model import OUTBOUND_REASON, Channel, ContactSpec, ContactState, Presence
from engine.core import Committed, Core, EngineUnavailable
from engine.telephony.dialplan import DialPlan, DialRefused, DialTarget
from engine.telephony.guards import LegWork
from engine.telephony.protocol import HangupCause, Telephony
from engine.telephony.tonegen import write_wav

log = logging.getLogger("switchboard.outbound")

RING_GRACE_S = 2.0  # as in calls.py: the SIP ring timer outlives the ACD's offer
CLICK_RING_S = 30.0  # how long the agent's own station rings for a click-to-dial
DIAL_TIMEOUT_S = 60.0  # how long the outside number may ring
CALLBACK_RETRY_S = 600.0
CALLBACK_ATTEMPTS = 3


class OutboundKind(StrEnum):
    CLICK_TO_DIAL = "click_to_dial"
    CALLBACK = "callback"


class OutboundState(StrEnum):
    RINGING_AGENT = "ringing_agent"
    DIALLING = "dialling"  # the agent is on the line, the outside number rings
    CONNECTED = "connected"
    ENDED = "ended"


class AgentBusy(Exception):
    """The agent has no station, or is on (or being offered) a call already."""


@dataclass(eq=False)
class OutboundCall:
    id: str
    kind: OutboundKind
    agent: str
    target: DialTarget
    contact: str | None = None  # the callback contact
    state: OutboundState = OutboundState.RINGING_AGENT
    agent_leg: str | None = None
    far_leg: str | None = None
    bridge: str | None = None
    ringback: str | None = None  # playback id on the agent leg while the far end rings
    outcome: str = ""
    restore: tuple[str, str | None] | None = None  # click-to-dial: the agent's presence before it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind.value, "agent": self.agent, "number": self.target.number,
                "category": self.target.category.value, "contact": self.contact, "state": self.state.value,
                "outcome": self.outcome or None}


class OutboundDialer(LegWork):
    handler_name = "outbound handler"

    def __init__(self, core: Core, telephony: Telephony, *, stations: Callable[[], dict[str, str]],
                 dial_plan: Callable[[], DialPlan], caller_id: Callable[[], str], media_dir: Path,
                 callback_retry_s: float = CALLBACK_RETRY_S, callback_attempts: int = CALLBACK_ATTEMPTS,
                 click_ring_s: float = CLICK_RING_S, dial_timeout_s: float = DIAL_TIMEOUT_S):
        self.core, self.telephony = core, telephony
        self.stations, self.dial_plan, self.caller_id = stations, dial_plan, caller_id
        self.ringback_audio = str(write_wav(media_dir / "ringback.wav", [(440.0, 2.0), (0.0, 4.0)]))
        self.callback_retry_s, self.callback_attempts = callback_retry_s, callback_attempts
        self.click_ring_s, self.dial_timeout_s = click_ring_s, dial_timeout_s
        self.calls: dict[str, OutboundCall] = {}  # id -> call, while any of its legs is up
        self.legs: dict[str, OutboundCall] = {}  # leg -> call
        self.by_contact: dict[str, OutboundCall] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        core.listeners.append(self._on_committed)

    def close(self) -> None:
        if self._on_committed in self.core.listeners:
            self.core.listeners.remove(self._on_committed)
        for t in list(self._tasks):
            t.cancel()

    def owns(self, leg_id: str) -> bool:
        return leg_id in self.legs

    def of_agent(self, agent: str) -> list[OutboundCall]:
        return [c for c in self.calls.values() if c.agent == agent]

    # ------------------------------------------------------------------------------------------
    # click-to-dial
    async def click_to_dial(self, agent: str, number: str) -> OutboundCall:
        """Raises DialRefused (nothing dialled), AgentBusy, or an ACD error (unknown agent, logged out)."""
        target = self.dial_plan().route(number)
        station = self.stations().get(agent)
        if station is None:
            raise AgentBusy(f"agent {agent!r} has no station to ring (log in with a station first)")
        if self.of_agent(agent):
            raise AgentBusy(f"agent {agent!r} is already on an outbound call")
        call = OutboundCall(id=f"dial-{uuid.uuid4().hex[:12]}", kind=OutboundKind.CLICK_TO_DIAL, agent=agent,
                            target=target)

        def occupy(r: Any, now: float) -> Any:
            # checked and done in one command, so no offer can slip in between
            a = r.agents.get(agent)
            if a is None:
                raise acd_errors.UnknownAgent(f"no agent {agent!r}")
            if a.presence is Presence.LOGGED_OUT:
                raise acd_errors.InvalidTransition(f"agent {agent!r} is not logged in")
            busy = [cid for cid, ch in a.offers.items() if ch in (Channel.VOICE, Channel.CALLBACK)]
            busy += [cid for cid, ch in a.work.items() if ch in (Channel.VOICE, Channel.CALLBACK)
                     and r.contacts[cid].state is not ContactState.WRAP_UP]
            if busy:
                raise AgentBusy(f"agent {agent!r} is on a call ({', '.join(busy)})")
            call.restore = (a.presence.value, a.reason)
            return r.set_not_ready(agent, now, OUTBOUND_REASON)

        await self.core.execute(occupy)
        self._track(call)
        async with call.lock:
            await self._ring_agent(call, station, self.click_ring_s, caller_id=target.number)
        log.info("click-to-dial", extra={"agent": agent, "number": target.number,
                                         "category": target.category.value, "id": call.id})
        return call

    # ------------------------------------------------------------------------------------------
    # callbacks (from the ACD's committed events)
    def _on_committed(self, items: list[Committed]) -> None:
        for item in items:
            e = item.event
            if isinstance(e, ContactOffered):
                c = self.core.router.contacts.get(e.contact)
                if c is not None and c.channel is Channel.CALLBACK:
                    self._spawn(self._callback_offered(e, dict(c.attributes)))
            elif isinstance(e, (OfferMissed, ContactEnded, ContactAbandoned, ContactTransferred)):
                call = self.by_contact.get(e.contact)
                if call is not None:
                    self._spawn(self._contact_moved(call, e))

    async def _callback_offered(self, offer: ContactOffered, attributes: dict[str, Any]) -> None:
        number = str(attributes.get("caller_id", ""))
        try:
            target = self.dial_plan().route(number)
        except DialRefused as exc:
            log.warning("callback refused by the dial plan: not dialled, contact ended",
                        extra={"contact": offer.contact, "number": number, "category": exc.category.value,
                               "reason": exc.reason})
            await self._acd(lambda r, now: r.accept(offer.contact, offer.agent, now))
            await self._acd(lambda r, now: r.end(offer.contact, now))
            return
        station = await self._station_or_decline(offer.contact, offer.agent, "callback offer")
        if station is None:
            return
        if offer.contact in self.by_contact:
            return  # already being handled (an offer seen twice)
        call = OutboundCall(id=f"cb-{uuid.uuid4().hex[:12]}", kind=OutboundKind.CALLBACK, agent=offer.agent,
                            target=target, contact=offer.contact)
        self._track(call)
        ring_s = max(1.0, offer.deadline - self.core.clock()) + RING_GRACE_S
        async with call.lock:
            await self._ring_agent(call, station, ring_s, caller_id=target.number)
        log.info("callback: ringing agent",
                 extra={"contact": offer.contact, "agent": offer.agent, "id": call.id})

    async def _contact_moved(self, call: OutboundCall, e: Any) -> None:
        async with call.lock:
            if call.state is OutboundState.ENDED:
                return
            if isinstance(e, OfferMissed):
                if e.agent != call.agent or call.state is not OutboundState.RINGING_AGENT:
                    return
                call.outcome = f"offer missed ({e.reason})"
            else:
                call.outcome = "ended by the desktop" if isinstance(e, ContactEnded) else "contact moved on"
            call.state = OutboundState.ENDED
            await self._hangup_all(call, HangupCause.CANCELLED)
            self._maybe_forget(call)

    # ------------------------------------------------------------------------------------------
    # CallEvents for our legs (handed on by the call controller)
    async def answered(self, leg_id: str) -> None:
        call = self.legs.get(leg_id)
        if call is None:
            await self._quiet(self.telephony.hangup(leg_id))
            return
        async with call.lock:
            if leg_id == call.agent_leg and call.state is OutboundState.RINGING_AGENT:
                await self._agent_answered(call)
            elif leg_id == call.far_leg and call.state is OutboundState.DIALLING:
                call.state = OutboundState.CONNECTED
                await self._stop_ringback(call)
                call.bridge = await self._quiet(self.telephony.bridge([call.agent_leg or "", leg_id]))
                log.info("outbound call connected", extra={"id": call.id, "number": call.target.number})
            else:  # answered after we gave up on it
                await self._hangup(leg_id, HangupCause.NORMAL)

    async def ended(self, leg_id: str, cause: HangupCause, sip_code: int | None = None) -> None:
        call = self.legs.pop(leg_id, None)
        if call is None:
            return
        async with call.lock:
            if leg_id == call.agent_leg:
                call.agent_leg = None
                call.ringback = None
                await self._agent_gone(call, cause)
            elif leg_id == call.far_leg:
                call.far_leg = None
                await self._far_gone(call, cause, sip_code)
            self._maybe_forget(call)

    async def dtmf(self, leg_id: str, digit: str) -> None:
        log.info("dtmf on an outbound leg", extra={"leg": leg_id, "digit": digit})

    # ------------------------------------------------------------------------------------------
    # steps (under the call's lock)
    async def _ring_agent(self, call: OutboundCall, station: str, ring_s: float, *, caller_id: str) -> None:
        leg = f"{call.id}-agent"
        call.agent_leg = leg
        self.legs[leg] = call
        try:
            await self.telephony.originate(station, caller_id=caller_id, timeout_s=ring_s, leg_id=leg)
        except Exception as exc:  # the back end refused at once: as if the station did not answer
            log.warning("station unreachable", extra={"agent": call.agent, "error": str(exc)})
            self.legs.pop(leg, None)
            call.agent_leg = None
            await self._agent_gone(call, HangupCause.UNREACHABLE)
            self._maybe_forget(call)

    async def _agent_answered(self, call: OutboundCall) -> None:
        if call.kind is OutboundKind.CALLBACK:
            assert call.contact is not None
            contact, agent = call.contact, call.agent
            try:
                await self.core.execute(lambda r, now: r.accept(contact, agent, now))
            except (EngineUnavailable, acd_errors.AcdError) as exc:
                log.info("callback answered too late for the offer",
                         extra={"contact": contact, "error": str(exc)})
                call.state, call.outcome = OutboundState.ENDED, "offer gone"
                await self._hangup_all(call, HangupCause.NORMAL)
                return
        call.state = OutboundState.DIALLING
        call.ringback = await self._quiet(self.telephony.play(call.agent_leg or "", self.ringback_audio,
                                                              loop=True))
        leg = f"{call.id}-far"
        call.far_leg = leg
        self.legs[leg] = call
        try:
            await self.telephony.originate(call.target.uri, caller_id=self.caller_id(),
                                           timeout_s=self.dial_timeout_s, leg_id=leg)
        except Exception as exc:
            log.warning("outside line unreachable", extra={"uri": call.target.uri, "error": str(exc)})
            self.legs.pop(leg, None)
            call.far_leg = None
            await self._far_gone(call, HangupCause.UNREACHABLE, None)
        log.info("dialling", extra={"id": call.id, "number": call.target.number, "uri": call.target.uri})

    async def _agent_gone(self, call: OutboundCall, cause: HangupCause) -> None:
        was = call.state
        if was is OutboundState.ENDED:
            return
        call.state = OutboundState.ENDED
        if was is OutboundState.RINGING_AGENT:
            call.outcome = f"agent station: {cause.value}"
            if call.kind is OutboundKind.CALLBACK and cause is not HangupCause.CANCELLED:
                contact, agent = call.contact or "", call.agent
                reason = "busy" if cause is HangupCause.BUSY else "rejected"
                await self._acd(lambda r, now: r.reject(contact, agent, now, reason=reason))
        else:
            call.outcome = "agent hung up"
            if call.far_leg is not None:
                await self._hangup(call.far_leg, HangupCause.CANCELLED if was is OutboundState.DIALLING
                                   else HangupCause.NORMAL)
            if call.kind is OutboundKind.CALLBACK:
                await self._end_contact(call)
        await self._release_agent(call)

    async def _far_gone(self, call: OutboundCall, cause: HangupCause, sip_code: int | None) -> None:
        was = call.state
        if was is OutboundState.ENDED:
            return
        call.state = OutboundState.ENDED
        await self._stop_ringback(call)
        if call.agent_leg is not None:
            await self._hangup(call.agent_leg, HangupCause.NORMAL)
        if was is OutboundState.DIALLING:
            code = f" ({sip_code})" if sip_code else ""
            call.outcome = f"no answer from {call.target.number}: {cause.value}{code}"
            log.info("outside number not reached", extra={"id": call.id, "number": call.target.number,
                                                          "cause": cause.value, "sip_code": sip_code})
            if call.kind is OutboundKind.CALLBACK:
                await self._end_contact(call)
                await self._reschedule(call)
        else:
            call.outcome = "the other side hung up"
            if call.kind is OutboundKind.CALLBACK:
                await self._end_contact(call)
        await self._release_agent(call)

    async def _end_contact(self, call: OutboundCall) -> None:
        contact = call.contact or ""
        await self._acd(lambda r, now: r.end(contact, now))

    async def _reschedule(self, call: OutboundCall) -> None:
        old = self.core.router.contacts.get(call.contact or "")
        if old is None:
            return
        attempt = int(old.attributes.get("callback_attempt", 1))
        if attempt >= self.callback_attempts:
            log.warning("callback given up: no answer after the last attempt",
                        extra={"contact": old.id, "attempts": attempt, "number": call.target.number})
            return
        first = str(old.attributes.get("callback_of", old.id))
        attributes = {**old.attributes, "callback_attempt": attempt + 1, "callback_of": first}
        spec = ContactSpec(id=f"{first}-r{attempt + 1}", queue=old.queue, channel=Channel.CALLBACK,
                           requirements=old.own_requirements, priority=old.priority, attributes=attributes,
                           enqueued_at=old.enqueued_at, schedule_at=self.core.clock() + self.callback_retry_s)
        await self._acd(lambda r, now: r.enqueue(spec, now))
        log.info("callback rescheduled", extra={"contact": spec.id, "attempt": attempt + 1,
                                                "in_s": self.callback_retry_s})

    async def _release_agent(self, call: OutboundCall) -> None:
        """Click-to-dial: put the agent back as they were, unless they changed their state themselves."""
        if call.kind is not OutboundKind.CLICK_TO_DIAL or call.restore is None:
            return
        presence, reason = call.restore
        call.restore = None
        agent = call.agent

        def restore(r: Any, now: float) -> Any:
            a = r.agents[agent]
            if a.presence is not Presence.NOT_READY or a.reason != OUTBOUND_REASON:
                return []
            if presence == Presence.READY.value:
                return r.set_ready(agent, now)
            return r.set_not_ready(agent, now, reason or "break")

        await self._acd(restore)

    # ------------------------------------------------------------------------------------------
    # helpers
    def _track(self, call: OutboundCall) -> None:
        self.calls[call.id] = call
        if call.contact is not None:
            self.by_contact[call.contact] = call

    def _maybe_forget(self, call: OutboundCall) -> None:
        if call.state is OutboundState.ENDED and call.agent_leg is None and call.far_leg is None:
            self.calls.pop(call.id, None)
            if call.contact is not None and self.by_contact.get(call.contact) is call:
                self.by_contact.pop(call.contact, None)
            log.info("outbound call over", extra={"id": call.id, "outcome": call.outcome})

    async def _hangup_all(self, call: OutboundCall, cause: HangupCause) -> None:
        for leg in (call.far_leg, call.agent_leg):
            if leg is not None:
                await self._hangup(leg, cause)
        await self._release_agent(call)

    async def _stop_ringback(self, call: OutboundCall) -> None:
        if call.ringback is not None:
            pid, call.ringback = call.ringback, None
            await self._quiet(self.telephony.stop_playback(pid))



def start_outbound(app: Any, controller: Any) -> OutboundDialer:
    """Assembly (called from `calls.start_voice`): the dialer next to the call controller, on its back end."""
    site = lambda: app.state.site.engine.dial_plan  # noqa: E731 - read live: a reload changes the plan
    dialer = OutboundDialer(app.state.core, controller.telephony, stations=lambda: app.state.stations,
                            dial_plan=lambda: site().plan(), caller_id=lambda: site().caller_id,
                            media_dir=app.state.settings.data_dir / "media",
                            callback_retry_s=site().callback_retry_s,
                            callback_attempts=site().callback_attempts)
    controller.outbound = dialer
    app.state.dialer = dialer
    return dialer
