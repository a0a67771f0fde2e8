"""In-call features of the call controller: hold, blind transfer out, consult (warm transfer), conference.

A call has one bridge (caller, agent, and a third party when there is one); hold is per leg, so a held
caller hears hold audio while the agent and a consulted third party talk in the same bridge, and resuming
the caller makes it a three-way conversation or, with one of the others gone, a two-way one again.

A *third party* is another agent's station (reserved in the ACD meanwhile) or an outside number the API
has already passed through the dial plan. What happens to the ACD contact:
- consult: caller held, agent talks to the target. Complete -> an agent target gets the contact (the ACD's
  `consult_complete`: history and note kept, first agent free); an outside target gets the caller and the
  contact ends for the agent (wrap-up). Cancel, or the target never answers or hangs up -> back to the
  agent (caller resumed, target released).
- conference: the target joins unheld; anyone leaving leaves the other two talking (the agent leaving hands
  the contact over as a completed consult; the caller leaving keeps the contact until one more leaves).
- transfer (blind, outside number): the agent's leg drops at once, the caller hears hold audio while the
  outside line rings; answered -> caller bridged to it, contact ended for the agent; not answered -> the
  contact goes back to its queue at its old place (nothing is lost).
A call whose contact is over but whose caller still talks to an outside line is HANDED_OFF: the controller
only keeps the legs bridged until one side hangs up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from acd import errors as acd_errors
from acd.model import ContactState
from engine.telephony.protocol import HangupCause

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from engine.core import Core
    from engine.telephony.calls import VoiceCall
    from engine.telephony.protocol import Telephony

log = logging.getLogger("switchboard.calls")

OUTSIDE_RING_S = 30.0  # how long an outside line or a consulted station may ring


class InCallRefused(Exception):
    """The call is not in a state for this request (no live call, no agent on it, a third party already)."""

    def __init__(self, code: str, detail: str):
        self.code, self.detail = code, detail
        super().__init__(detail)


class InCallFeatures:
    """Mixed into `CallController`; every public method takes the call's lock."""

    if TYPE_CHECKING:  # what the controller provides
        core: Core
        telephony: Telephony
        calls: dict[str, VoiceCall]
        legs: dict[str, VoiceCall]
        hold_audio: str | None
        stations: Callable[[], dict[str, str]]

        def _caller_id(self, call: VoiceCall) -> str: ...
        async def _acd(self, command: Callable[[Any, float], Any]) -> None: ...
        async def _hangup(self, leg: str, cause: HangupCause) -> None: ...
        async def _quiet(self, aw: Awaitable[Any]) -> Any: ...

    # ------------------------------------------------------------------------------------------
    # requests from the API
    async def consult(self, contact: str, *, purpose: str, to_agent: str | None = None,
                      number: str | None = None, uri: str | None = None, caller_id: str = "",
                      note: str = "") -> None:
        """Start a consult, conference or blind transfer out (`purpose`) to an agent or a routed number."""
        from engine.telephony.calls import CallState, new_leg_id

        call = self._live_call(contact)
        async with call.lock:
            if call.state is not CallState.CONNECTED or call.agent_leg is None or not call.caller_up:
                raise InCallRefused("no-live-call", f"contact {contact!r} is not a call connected to an agent")
            if call.third_purpose is not None:
                raise InCallRefused("third-party-busy", f"contact {contact!r} already has a third party on it")
            if to_agent is not None:
                uri = self.stations().get(to_agent)
                if uri is None:
                    raise InCallRefused("no-station", f"agent {to_agent!r} has no station to ring")
                caller_id = self._caller_id(call)
            assert uri is not None
            await self.core.execute(lambda r, now: r.consult(contact, now, to_agent=to_agent, to_number=number,
                                                             purpose=purpose, note=note))
            call.third_agent, call.third_number, call.third_purpose = to_agent, number, purpose
            if purpose != "conference":  # the caller waits on hold: the ACD counts it as hold time
                await self._acd(lambda r, now: r.hold(contact, now)
                                if r.contacts[contact].state is ContactState.CONNECTED else [])
                await self._hold_caller(call)
            if purpose == "transfer":  # blind: the agent is done with the call now
                leg, call.agent_leg = call.agent_leg, None
                self.legs.pop(leg, None)
                await self._hangup(leg, HangupCause.NORMAL)
            leg = new_leg_id("third")
            call.third_leg = leg
            self.legs[leg] = call  # before the request: the back end's events for the leg may beat its reply
            try:
                await self.telephony.originate(uri, caller_id=caller_id, timeout_s=OUTSIDE_RING_S, leg_id=leg)
            except Exception as exc:  # noqa: BLE001 - any back-end refusal: the caller must not be left held
                log.warning("third party unreachable", extra={"contact": contact, "error": str(exc)})
                self._forget_third(call)
                await self._third_failed(call, "unreachable", purpose, number)
                return
            log.info("third party ringing", extra={"contact": contact, "purpose": purpose, "leg": leg})

    async def consult_complete(self, contact: str) -> None:
        """The third party takes the caller over; the consulting agent's leg drops."""
        call = self._live_call(contact)
        async with call.lock:
            if call.third_leg is None or call.third_purpose is None:
                raise InCallRefused("no-consult", f"contact {contact!r} has no consult going on")
            if not call.third_up:
                raise InCallRefused("not-answered", f"the third party on {contact!r} has not answered yet")
            await self._hand_over(call)

    async def consult_cancel(self, contact: str) -> None:
        """Let the third party go; the caller is back with the agent."""
        call = self._live_call(contact)
        async with call.lock:
            if call.third_leg is None or call.third_purpose is None:
                raise InCallRefused("no-consult", f"contact {contact!r} has no consult going on")
            if call.third_purpose == "transfer":
                raise InCallRefused("no-consult", f"the blind transfer of {contact!r} cannot be called back")
            leg = self._forget_third(call)
            await self._hangup(leg, HangupCause.NORMAL)
            await self._acd(lambda r, now: r.consult_cancel(contact, now))
            await self._back_to_agent(call)

    def _live_call(self, contact: str) -> VoiceCall:
        call = self.calls.get(contact)
        if call is None:
            raise InCallRefused("no-live-call", f"contact {contact!r} has no live call")
        return call

    # ------------------------------------------------------------------------------------------
    # the third party's leg (under the call's lock)
    async def _third_answered(self, call: VoiceCall, leg_id: str) -> None:
        call.third_up = True
        if call.bridge is None:
            call.bridge = await self.telephony.bridge([x for x in (call.caller_leg, call.agent_leg, leg_id)
                                                       if x is not None and x in self.legs])
        else:
            await self.telephony.add_to_bridge(call.bridge, leg_id)
        if call.third_purpose == "transfer":
            try:
                await self._hand_over(call)
            except acd_errors.AcdError as exc:  # the contact moved on meanwhile (ended by the desktop)
                log.info("hand-over refused", extra={"contact": call.contact, "error": str(exc)})
                await self._hangup(self._forget_third(call), HangupCause.NORMAL)
            return
        log.info("third party answered", extra={"contact": call.contact, "purpose": call.third_purpose})

    async def _third_gone(self, call: VoiceCall, cause: HangupCause) -> None:
        from engine.telephony.calls import CallState

        was_up, purpose, number = call.third_up, call.third_purpose, call.third_number
        self._forget_third(call)
        if purpose is None or call.state is not CallState.CONNECTED:
            return
        if not was_up:  # busy, no answer, unreachable
            await self._third_failed(call, cause.value, purpose, number)
            return
        await self._acd(lambda r, now: r.consult_cancel(call.contact, now))
        if not call.caller_up:  # a conference the caller left earlier: the agent is alone now
            await self._end_call(call)
            return
        await self._back_to_agent(call)

    async def _third_failed(self, call: VoiceCall, why: str, purpose: str,
                            number: str | None) -> None:
        """The third party never answered: back to the agent, or (blind transfer) back to the queue."""
        await self._acd(lambda r, now: r.consult_cancel(call.contact, now))
        if purpose != "transfer" and call.agent_leg is not None:
            await self._back_to_agent(call)
            return
        log.info("outside transfer failed: back to the queue", extra={"contact": call.contact, "why": why})
        await self._acd(lambda r, now: r.requeue(call.contact, now, note=f"transfer to {number} failed: {why}"))

    async def _hand_over(self, call: VoiceCall) -> None:
        """Complete: the ACD moves the contact (agent target) or ends it for the agent (outside number)."""
        from engine.telephony.calls import CallState

        await self.core.execute(lambda r, now: r.consult_complete(call.contact, now))
        old_leg, third = call.agent_leg, call.third_leg
        if call.third_agent is not None:
            call.agent, call.agent_leg = call.third_agent, third
        else:  # the contact is over for us; the caller talks on with the outside line
            call.state, call.agent_leg, call.outside_leg = CallState.HANDED_OFF, None, third
        call.third_leg = call.third_agent = call.third_number = call.third_purpose = None
        call.third_up = False
        if old_leg is not None:
            self.legs.pop(old_leg, None)  # its ending is ours
            await self._hangup(old_leg, HangupCause.NORMAL)
        await self._resume_caller(call)
        log.info("handed over", extra={"contact": call.contact, "agent": call.agent, "state": call.state.value})

    async def _back_to_agent(self, call: VoiceCall) -> None:
        await self._resume_caller(call)
        await self._acd(lambda r, now: r.resume(call.contact, now)
                        if r.contacts[call.contact].state is ContactState.HELD else [])

    def _forget_third(self, call: VoiceCall) -> str:
        leg = call.third_leg
        if leg is not None:
            self.legs.pop(leg, None)
        call.third_leg = call.third_agent = call.third_number = call.third_purpose = None
        call.third_up = False
        return leg or ""

    # ------------------------------------------------------------------------------------------
    # hold (media)
    async def _hold_caller(self, call: VoiceCall) -> None:
        if not call.held and call.caller_up:
            call.held = True
            await self._quiet(self.telephony.hold(call.caller_leg, self.hold_audio))

    async def _resume_caller(self, call: VoiceCall) -> None:
        if call.held:
            call.held = False
            if call.caller_up:
                await self._quiet(self.telephony.resume(call.caller_leg))

    async def _end_call(self, call: VoiceCall) -> None:
        """Hang up whatever is left and end the contact (wrap-up follows)."""
        from engine.telephony.calls import CallState

        call.state = CallState.ENDED
        for leg in (call.agent_leg, call.third_leg, call.caller_leg):
            if leg is not None and leg in self.legs:
                await self._hangup(leg, HangupCause.NORMAL)
        await self._acd(lambda r, now: r.end(call.contact, now))

    async def _drop_third(self, call: VoiceCall) -> None:
        """The contact moved on without the third party (ended, transferred): let them go."""
        if call.third_purpose is None:
            return
        leg = self._forget_third(call)
        if leg:
            await self._hangup(leg, HangupCause.NORMAL)
        await self._acd(lambda r, now: r.consult_cancel(call.contact, now))

    # ------------------------------------------------------------------------------------------
    def describe(self, contact: str) -> dict[str, Any] | None:
        """What the API shows of a live call."""
        call = self.calls.get(contact)
        if call is None:
            return None
        return {"state": call.state.value, "held": call.held, "agent": call.agent,
                "third_party": ({"agent": call.third_agent, "number": call.third_number,
                                 "purpose": call.third_purpose, "answered": call.third_up}
                                if call.third_purpose else None)}
