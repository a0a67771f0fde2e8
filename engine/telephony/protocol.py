"""What the engine needs from a telephony back end, and what a back end tells the engine.

Two back ends fill `Telephony`: embedded SIP with pjsua2 (`sip_pjsua2.py`, the default, no PBX) and
Asterisk through ARI (`ari.py`). The call controller (`calls.py`) is written against this interface only,
so the queueing, ringing, RONA and bridging logic is the same whichever back end carries the media.

Vocabulary: a *leg* is one SIP dialog (caller -> us, or us -> an agent's station / an outside number).
Legs are joined in a *bridge* (two legs: a conversation; three: a conference). Every method is async and
returns once the back end has accepted the request; outcomes arrive as `CallEvents` callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class LegDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class HangupCause(StrEnum):
    NORMAL = "normal"  # BYE from either side
    BUSY = "busy"  # 486 Busy Here / 600 Busy Everywhere
    NO_ANSWER = "no_answer"  # ring timeout (we cancelled) or 408/480
    REJECTED = "rejected"  # 603 Decline and other final failures
    UNREACHABLE = "unreachable"  # 404/503, transport error, no response
    CANCELLED = "cancelled"  # we cancelled an outbound leg (e.g. the caller hung up while it rang)


@dataclass(frozen=True, slots=True)
class Leg:
    id: str
    direction: LegDirection
    remote_uri: str  # the caller (inbound) or the called station/number (outbound)
    dialled: str  # the number the caller dialled (inbound) or the target (outbound)
    caller_id: str = ""  # the caller's number as presented (From user part)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Admission:
    """The engine's answer to a new inbound call: accept it (then answer) or refuse it with a SIP code."""

    accept: bool
    sip_code: int = 200  # 404 unknown number, 503 over the concurrent-call limit, 486 busy
    reason: str = ""


class CallEvents(Protocol):
    """Callbacks from the back end into the engine (the call controller implements them)."""

    async def incoming(self, leg: Leg) -> Admission: ...

    async def answered(self, leg_id: str) -> None: ...  # an outbound leg was answered (200 OK + ACK)

    async def ended(self, leg_id: str, cause: HangupCause, sip_code: int | None = None) -> None: ...

    async def dtmf(self, leg_id: str, digit: str) -> None: ...  # RFC 4733 or SIP INFO


class Telephony(Protocol):
    """A back end. `start` binds and begins delivering `CallEvents`; `stop` hangs everything up."""

    # legs the back end can hold at once when it has a hard limit of its own (None: none known)
    leg_limit: int | None

    async def start(self, events: CallEvents) -> None: ...

    async def stop(self) -> None: ...

    async def answer(self, leg_id: str) -> None: ...

    async def hangup(self, leg_id: str, cause: HangupCause = HangupCause.NORMAL) -> None: ...

    async def originate(self, uri: str, *, caller_id: str, timeout_s: float, leg_id: str | None = None) -> str:
        """Start ringing `uri`; returns the new leg id. `answered`/`ended` report the outcome."""
        ...

    async def play(self, leg_id: str, media: str, *, loop: bool = False) -> str:
        """Play a WAV file (or a tone spec) to a leg; returns a playback id."""
        ...

    async def stop_playback(self, playback_id: str) -> None: ...

    async def bridge(self, leg_ids: list[str]) -> str:
        """Join legs (2: conversation; 3+: conference) with audio both ways; returns a bridge id."""
        ...

    async def add_to_bridge(self, bridge_id: str, leg_id: str) -> None: ...

    async def remove_from_bridge(self, bridge_id: str, leg_id: str) -> None: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...

    async def hold(self, leg_id: str, music: str | None = None) -> None: ...

    async def resume(self, leg_id: str) -> None: ...

    async def send_dtmf(self, leg_id: str, digits: str) -> None: ...

    async def record(self, leg_or_bridge_id: str, path: str) -> str:
        """Record to a WAV file; returns a recording id."""
        ...

    async def stop_recording(self, recording_id: str) -> None: ...

    def active_legs(self) -> list[str]:
        """Legs the back end still holds (a test checks this is empty after every call ends)."""
        ...
