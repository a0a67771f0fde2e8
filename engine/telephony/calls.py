"""The call controller: keeps each voice call and its ACD contact in step, whatever back end carries it.

Inbound: the dialled number picks the queue (404 if unknown, 503 over the concurrent-call limit); the call
is enqueued as a voice contact, answered, and hears comfort audio while it waits. The ACD decides who
gets it: on `ContactOffered` the agent's station rings for as long as the ACD's offer timeout (the ACD's
timer is the one that counts: its `OfferMissed` cancels the ring; the SIP timer, a little longer, is only
a backstop). Answer -> `accept` and bridge; busy or a failed station -> `reject` (RONA, next agent);
caller hang-up before an agent answered -> `abandon` (cancelling a ringing station); either side's BYE
once connected -> hang up the other leg and `end` (wrap-up follows). A transfer or requeue by the API
drops the agent leg and the caller waits (with comfort audio) for the next offer. Hold, consult (warm
transfer), conference and transfers to outside numbers: incall.py.

Every handler for one call runs under that call's lock, so a leg's events and the ACD's events for the
same contact never interleave. The call table (leg -> call) empties when the last leg of a call ends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from acd import errors as acd_errors
from acd.events import (
    CallbackRequested,
    ContactAbandoned,
    ContactEnded,
    ContactHeld,
    ContactOffered,
    ContactResumed,
    ContactTransferred,
    OfferMissed,
)
from acd.model import Channel, ContactSpec
from engine.core import Committed, Core, EngineUnavailable
from engine.telephony.guards import LegWork
from engine.telephony.incall import InCallFeatures
from engine.telephony.protocol import Admission, HangupCause, Leg, Telephony

log = logging.getLogger("switchboard.calls")

ARI_COMFORT = "sound:queue-periodic-announce"  # Asterisk core sound: "...please wait for the next available..."
RING_GRACE_S = 2.0  # the SIP ring timer outlives the ACD's offer timeout by this much


def new_leg_id(prefix: str) -> str:
    """A leg id chosen before the originate request (usable as an ARI channel id too)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class CallState(StrEnum):
    QUEUED = "queued"  # answered, comfort audio, waiting for an offer
    RINGING = "ringing"  # an agent's station is ringing
    CONNECTED = "connected"  # caller and agent bridged (and maybe a third party: see incall.py)
    HANDED_OFF = "handed_off"  # the contact is over; the caller talks on with an outside line
    ENDED = "ended"  # the contact is over; legs may still be hanging up


@dataclass(eq=False)
class VoiceCall:
    contact: str
    queue: str
    caller_leg: str
    state: CallState = CallState.QUEUED
    caller_up: bool = True
    comfort: str | None = None  # playback id
    agent: str | None = None
    agent_leg: str | None = None
    bridge: str | None = None
    held: bool = False  # the caller is on hold (hold audio, out of the bridge)
    third_leg: str | None = None  # a consulted / conferenced / transferred-to party (incall.py)
    third_agent: str | None = None
    third_number: str | None = None
    third_purpose: str | None = None  # "consult" | "conference" | "transfer"
    third_up: bool = False
    outside_leg: str | None = None  # HANDED_OFF: the outside line the caller talks to
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class CallController(InCallFeatures, LegWork):
    """Implements `CallEvents` for a `Telephony` back end and follows the ACD's committed events."""

    def __init__(self, core: Core, telephony: Telephony, *, numbers: Callable[[], dict[str, str]],
                 stations: Callable[[], dict[str, str]], comfort_audio: str, hold_audio: str | None = None,
                 max_calls: int = 100):
        self.core, self.telephony = core, telephony
        self.numbers, self.stations = numbers, stations
        self.comfort_audio, self.hold_audio = comfort_audio, hold_audio
        self.max_calls = max_calls
        self.calls: dict[str, VoiceCall] = {}  # contact -> call
        self.legs: dict[str, VoiceCall] = {}  # leg -> call (the call table)
        self._acd_events: asyncio.Queue[Any] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.dtmf_listeners: list[Callable[[str, str, str], None]] = []  # (contact, leg, digit): the IVR
        self.outbound: Any = None  # outbound.OutboundDialer: gets the events of the legs it originated

    # ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.core.listeners.append(self._on_committed)
        self._pump = asyncio.create_task(self._run_pump(), name="calls-acd-events")
        await self.telephony.start(self)

    async def stop(self) -> None:
        if self._on_committed in self.core.listeners:
            self.core.listeners.remove(self._on_committed)
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        await self.telephony.stop()
        for t in list(self._tasks):
            t.cancel()

    def call_table(self) -> dict[str, str]:
        """leg -> contact for every leg the controller still tracks (empty when no call is up)."""
        return {leg: call.contact for leg, call in self.legs.items()}

    # ------------------------------------------------------------------------------------------
    # CallEvents (from the back end)
    async def incoming(self, leg: Leg) -> Admission:
        queue = self.numbers().get(leg.dialled)
        if queue is None:
            log.info("call to unknown number refused", extra={"dialled": leg.dialled, "leg": leg.id})
            return Admission(False, 404, "Not Found")
        if len(self.calls) >= self.max_calls:
            log.warning("call refused: over the concurrent-call limit", extra={"limit": self.max_calls})
            return Admission(False, 503, "Service Unavailable")
        if not self._room_for_a_call():
            log.warning("call refused: the back end holds no more legs",
                        extra={"leg_limit": self.telephony.leg_limit, "calls": len(self.calls)})
            return Admission(False, 503, "Service Unavailable")
        call = VoiceCall(contact=f"call-{uuid.uuid4().hex[:16]}", queue=queue, caller_leg=leg.id)
        self.calls[call.contact] = call
        self.legs[leg.id] = call
        async with call.lock:
            spec = ContactSpec(id=call.contact, queue=queue, channel=Channel.VOICE,
                               attributes={"caller_id": leg.caller_id, "dialled": leg.dialled,
                                           "caller_uri": leg.remote_uri})
            try:
                await self.core.execute(lambda r, now: r.enqueue(spec, now))
            except (EngineUnavailable, acd_errors.AcdError) as exc:
                log.error("call refused: cannot queue it", extra={"error": str(exc)})
                self._drop(call)
                return Admission(False, 503, "Service Unavailable")
            if call.state is CallState.QUEUED and call.caller_up:
                # answer after the reply to this callback (the back end must see the admission first)
                self._spawn(self._answer(call))
        return Admission(True)

    def _room_for_a_call(self) -> bool:
        """Whether a back end with a hard leg limit can carry one more call to its end: an admitted call
        needs its agent's leg later, so a call we cannot connect is refused now (503), not queued to fail
        at the offer and count against an agent as a miss."""
        limit = getattr(self.telephony, "leg_limit", None)
        if limit is None:
            return True
        outbound = len(self.outbound.legs) if self.outbound is not None else 0
        return 2 * (len(self.calls) + 1) + outbound <= limit

    async def _answer(self, call: VoiceCall) -> None:
        async with call.lock:
            if not call.caller_up:
                return
            try:
                await self.telephony.answer(call.caller_leg)
            except Exception as exc:  # the caller went away in between
                log.info("answer failed", extra={"leg": call.caller_leg, "error": str(exc)})
                return
            if call.state in (CallState.QUEUED, CallState.RINGING):
                await self._start_comfort(call)

    async def answered(self, leg_id: str) -> None:
        call = self.legs.get(leg_id)
        if call is None:
            if self.outbound is not None and self.outbound.owns(leg_id):  # click-to-dial / callback leg
                return await self.outbound.answered(leg_id)  # type: ignore[no-any-return]
            await self.telephony.hangup(leg_id)
            return
        async with call.lock:
            if leg_id == call.third_leg and call.state is CallState.CONNECTED:
                await self._third_answered(call, leg_id)
                return
            if call.agent_leg != leg_id or call.state is not CallState.RINGING or call.agent is None:
                await self._hangup(leg_id, HangupCause.NORMAL)  # a station answered too late
                return
            agent = call.agent
            try:
                await self.core.execute(lambda r, now: r.accept(call.contact, agent, now))
            except (EngineUnavailable, acd_errors.AcdError) as exc:
                log.info("answer too late for the offer", extra={"contact": call.contact, "error": str(exc)})
                await self._hangup(leg_id, HangupCause.NORMAL)
                if call.state is CallState.RINGING and call.agent_leg == leg_id:
                    call.state, call.agent, call.agent_leg = CallState.QUEUED, None, None
                return
            call.state = CallState.CONNECTED
            await self._stop_comfort(call)
            call.bridge = await self.telephony.bridge([call.caller_leg, leg_id])
            log.info("call connected", extra={"contact": call.contact, "agent": agent})

    async def ended(self, leg_id: str, cause: HangupCause, sip_code: int | None = None) -> None:
        call = self.legs.get(leg_id)
        if call is None:
            if self.outbound is not None and self.outbound.owns(leg_id):
                await self.outbound.ended(leg_id, cause, sip_code)
            return
        async with call.lock:
            self.legs.pop(leg_id, None)
            if leg_id == call.caller_leg:
                await self._caller_gone(call)
            elif leg_id == call.agent_leg:
                await self._agent_leg_gone(call, cause)
            elif leg_id == call.third_leg:
                await self._third_gone(call, cause)
            elif leg_id == call.outside_leg:
                call.outside_leg = None
                if call.caller_up:
                    await self._hangup(call.caller_leg, HangupCause.NORMAL)
            self._maybe_forget(call)

    async def dtmf(self, leg_id: str, digit: str) -> None:
        call = self.legs.get(leg_id)
        log.info("dtmf", extra={"leg": leg_id, "digit": digit})
        for listener in list(self.dtmf_listeners):
            listener(call.contact if call is not None else "", leg_id, digit)

    # ------------------------------------------------------------------------------------------
    # leg endings (under the call's lock)
    async def _caller_gone(self, call: VoiceCall) -> None:
        call.caller_up = False
        call.comfort = None  # its player went with the leg
        if call.state is CallState.HANDED_OFF:
            if call.outside_leg is not None:
                await self._hangup(call.outside_leg, HangupCause.NORMAL)
            return
        if call.state is CallState.CONNECTED and call.third_up and call.third_purpose == "conference" \
                and call.agent_leg is not None:
            return  # the agent and the third party talk on; the contact ends when one more leaves
        if call.state is CallState.CONNECTED:
            await self._drop_third(call)
        if call.state in (CallState.QUEUED, CallState.RINGING):
            if call.agent_leg is not None:
                await self._hangup(call.agent_leg, HangupCause.CANCELLED)
            call.state = CallState.ENDED
            await self._acd(lambda r, now: r.abandon(call.contact, now))
        elif call.state is CallState.CONNECTED:
            call.state = CallState.ENDED
            if call.agent_leg is not None:
                await self._hangup(call.agent_leg, HangupCause.NORMAL)
            await self._acd(lambda r, now: r.end(call.contact, now))

    async def _agent_leg_gone(self, call: VoiceCall, cause: HangupCause) -> None:
        agent = call.agent
        call.agent_leg = None
        if call.state is CallState.RINGING and agent is not None:
            call.state, call.agent = CallState.QUEUED, None
            reason = "busy" if cause is HangupCause.BUSY else "rejected"
            if cause is not HangupCause.CANCELLED:
                # the contact may have timed out already (OfferMissed crossing the station's answer)
                await self._acd(lambda r, now: r.reject(call.contact, agent, now, reason=reason))
        elif call.state is CallState.CONNECTED and call.third_up and call.caller_up:
            # the agent left a consult or conference: the third party takes the caller over
            await self._quiet(self._hand_over(call))
        elif call.state is CallState.CONNECTED:
            await self._drop_third(call)
            call.state = CallState.ENDED
            await self._hangup(call.caller_leg, HangupCause.NORMAL)
            await self._acd(lambda r, now: r.end(call.contact, now))

    # ------------------------------------------------------------------------------------------
    # ACD events (committed, in journal order)
    def _on_committed(self, items: list[Committed]) -> None:
        for item in items:
            cid = getattr(item.event, "contact", None)
            if cid is not None and cid in self.calls:
                self._acd_events.put_nowait(item.event)

    async def _run_pump(self) -> None:
        while True:
            event = await self._acd_events.get()
            call = self.calls.get(event.contact)
            if call is None:
                continue
            # one task per event so a slow station does not hold up other calls; the lock keeps order per call
            self._spawn(self._on_acd_event(call, event))

    async def _on_acd_event(self, call: VoiceCall, event: Any) -> None:
        async with call.lock:
            if call.state in (CallState.ENDED, CallState.HANDED_OFF):
                return
            if isinstance(event, CallbackRequested):
                # the caller keeps their place and hangs up: the outbound dialer calls them back
                call.state = CallState.ENDED
                for leg in (call.agent_leg, call.caller_leg):
                    if leg is not None:
                        await self._hangup(leg, HangupCause.NORMAL)
            elif isinstance(event, ContactHeld):
                if call.state is CallState.CONNECTED:
                    await self._hold_caller(call)
            elif isinstance(event, ContactResumed):
                if call.state is CallState.CONNECTED:
                    await self._resume_caller(call)
            elif isinstance(event, ContactOffered):
                await self._ring(call, event)
            elif isinstance(event, OfferMissed):
                if call.state is CallState.RINGING and call.agent == event.agent and call.agent_leg:
                    leg, call.agent_leg, call.agent = call.agent_leg, None, None
                    call.state = CallState.QUEUED
                    self.legs.pop(leg, None)  # its ending is ours: nothing to tell the ACD
                    await self._hangup(leg, HangupCause.CANCELLED)
            elif isinstance(event, ContactTransferred):
                await self._drop_third(call)
                await self._resume_caller(call)
                if call.state in (CallState.CONNECTED, CallState.RINGING) and call.agent_leg:
                    leg, call.agent_leg, call.agent = call.agent_leg, None, None
                    self.legs.pop(leg, None)
                    if call.bridge:
                        await self._quiet(self.telephony.destroy_bridge(call.bridge))
                        call.bridge = None
                    await self._hangup(leg, HangupCause.NORMAL)
                call.state = CallState.QUEUED
                if call.caller_up:
                    await self._start_comfort(call)
            elif isinstance(event, (ContactEnded, ContactAbandoned)):
                # ended or abandoned through the API (the agent's desktop): hang up what is left
                await self._drop_third(call)
                call.state = CallState.ENDED
                for leg in (call.agent_leg, call.caller_leg):
                    if leg is not None and leg in self.legs:
                        await self._hangup(leg, HangupCause.NORMAL)
            self._maybe_forget(call)

    async def _ring(self, call: VoiceCall, offer: ContactOffered) -> None:
        if call.state is not CallState.QUEUED or not call.caller_up:
            return
        station = await self._station_or_decline(call.contact, offer.agent, "offer")
        if station is None:
            return
        timeout = max(1.0, offer.deadline - self.core.clock()) + RING_GRACE_S
        leg = new_leg_id("ring")
        call.state, call.agent, call.agent_leg = CallState.RINGING, offer.agent, leg
        self.legs[leg] = call  # before the request: the back end's events for the leg may beat its reply
        try:
            await self.telephony.originate(station, caller_id=self._caller_id(call), timeout_s=timeout, leg_id=leg)
        except Exception as exc:
            log.warning("station unreachable", extra={"agent": offer.agent, "error": str(exc)})
            self.legs.pop(leg, None)
            if call.agent_leg == leg:
                call.state, call.agent, call.agent_leg = CallState.QUEUED, None, None
            await self._acd(lambda r, now: r.reject(call.contact, offer.agent, now, reason="rejected"))
            return
        log.info("ringing station", extra={"contact": call.contact, "agent": offer.agent, "leg": leg})

    # ------------------------------------------------------------------------------------------
    # helpers
    def _caller_id(self, call: VoiceCall) -> str:
        c = self.core.router.contacts.get(call.contact)
        return str(c.attributes.get("caller_id", "")) if c is not None else ""

    async def _start_comfort(self, call: VoiceCall) -> None:
        if call.comfort is None:
            call.comfort = await self._quiet(self.telephony.play(call.caller_leg, self.comfort_audio, loop=True))

    async def _stop_comfort(self, call: VoiceCall) -> None:
        if call.comfort is not None:
            pid, call.comfort = call.comfort, None
            await self._quiet(self.telephony.stop_playback(pid))

    def _maybe_forget(self, call: VoiceCall) -> None:
        live = [leg for leg in (call.caller_leg, call.agent_leg, call.third_leg, call.outside_leg)
                if leg is not None and leg in self.legs]
        if not call.caller_up and not live:
            self._drop(call)

    def _drop(self, call: VoiceCall) -> None:
        self.calls.pop(call.contact, None)
        for leg in [x for x, c in self.legs.items() if c is call]:
            self.legs.pop(leg, None)


async def start_voice(app: Any) -> CallController | None:
    """Assembly for `engine/app.py`: the telephony back end (embedded SIP, or Asterisk ARI when
    `SWITCHBOARD_TELEPHONY=ari`) and its controller, started.

    If SIP cannot start (the port is taken) the engine still serves its API and other channels: the
    failure is logged as an error and None comes back."""
    from engine.telephony.outbound import start_outbound
    from engine.telephony.sip_pjsua2 import PjsuaTelephony
    from engine.telephony.tonegen import comfort_audio, hold_audio

    settings = app.state.settings
    media = settings.data_dir / "media"
    telephony: Any
    if getattr(settings, "telephony", "embedded") == "ari":  # SWITCHBOARD_TELEPHONY=ari: media on Asterisk
        from engine.telephony.ari import AriTelephony

        # Asterisk plays its own sounds: the queue announcement while waiting, its default music on hold
        telephony, comfort, hold = AriTelephony.from_settings(settings), ARI_COMFORT, None
    else:
        telephony = PjsuaTelephony(host=settings.sip_host, port=settings.sip_port,
                                   rtp_port_start=settings.rtp_port_start, max_legs=settings.max_calls * 2 + 16)
        comfort, hold = str(comfort_audio(media)), str(hold_audio(media))
    controller = CallController(app.state.core, telephony,
                                numbers=lambda: dict(app.state.site.engine.numbers),
                                stations=lambda: app.state.stations,
                                comfort_audio=comfort, hold_audio=hold,
                                max_calls=settings.max_calls)
    try:
        await controller.start()
        start_outbound(app, controller)  # click-to-dial and callbacks share the back end (outbound.py)
    except Exception as exc:
        log.error("voice not started: the telephony back end failed", extra={"error": str(exc)})
        await controller.stop()
        return None
    return controller
