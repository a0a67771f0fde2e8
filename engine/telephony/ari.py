"""Telephony over Asterisk ARI: Switchboard as a Stasis application.

Asterisk carries the media; this module turns the `Telephony` calls into ARI REST requests and the ARI events
WebSocket into `CallEvents` callbacks. The dialplan sends the central number to `Stasis(<ari_app>,<dialled>)`
(see docs/asterisk.md), so every inbound call arrives as a StasisStart for a channel we have not seen.

Conventions worth knowing:
- a leg id is the Asterisk channel id; outbound legs get an id we choose (`channelId`), so events that
  race the originate response still find their leg;
- the Stasis args tell our own channels apart: `outbound` for originated legs, `snoop` for snoop channels;
  anything else is an inbound call (its first arg, when present, is the dialled number);
- `ended` is reported once per leg, on ChannelDestroyed; a leg we hung up ourselves reports the cause we asked
  for (CANCELLED for an outbound leg that had not answered), a leg the far end hung up reports the Q.850 cause
  mapped to `HangupCause` (and the SIP code: ARI's `tech_cause` when sent, else the usual mapping);
- events for one leg are handled in order, each leg on its own chain of tasks, so a slow `incoming` (the
  controller looking up a queue) never holds up another call's events.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from engine.telephony.protocol import Admission, CallEvents, HangupCause, Leg, LegDirection

log = logging.getLogger(__name__)

OUTBOUND_ARG = "outbound"
SNOOP_ARG = "snoop"

# Q.850 cause (what ARI reports) -> what the engine cares about, and the SIP code Asterisk would have sent.
_Q850: dict[int, tuple[HangupCause, int | None]] = {
    16: (HangupCause.NORMAL, None),  # normal clearing
    31: (HangupCause.NORMAL, None),  # normal, unspecified
    17: (HangupCause.BUSY, 486),  # user busy
    18: (HangupCause.NO_ANSWER, 408),  # no user responding
    19: (HangupCause.NO_ANSWER, 480),  # no answer (ring timeout)
    21: (HangupCause.REJECTED, 603),  # call rejected
    1: (HangupCause.UNREACHABLE, 404),  # unallocated number
    3: (HangupCause.UNREACHABLE, 404),  # no route to destination
    20: (HangupCause.UNREACHABLE, 480),  # subscriber absent (station not registered)
    27: (HangupCause.UNREACHABLE, 502),  # destination out of order
    34: (HangupCause.UNREACHABLE, 503),  # no circuit / congestion
    38: (HangupCause.UNREACHABLE, 500),  # network out of order
    41: (HangupCause.UNREACHABLE, 503),  # temporary failure
    42: (HangupCause.UNREACHABLE, 503),  # switching equipment congestion
    102: (HangupCause.NO_ANSWER, 408),  # recovery on timer expiry
}

# SIP code of a refused inbound call -> ARI hangup `reason` (channels.json allowableValues); Asterisk's PJSIP
# channel turns the reason's Q.850 cause back into this SIP response.
_REFUSAL_REASON: dict[int, str] = {
    404: "unallocated",
    484: "number_incomplete",
    486: "busy",
    600: "busy",
    503: "congestion",
    480: "no_answer",
    408: "timeout",
    403: "rejected",
    603: "rejected",
    488: "codec_mismatch",
    500: "failure",
}

# Our own hangups: HangupCause -> ARI `reason`.
_HANGUP_REASON: dict[HangupCause, str] = {
    HangupCause.NORMAL: "normal",
    HangupCause.BUSY: "busy",
    HangupCause.NO_ANSWER: "no_answer",
    HangupCause.REJECTED: "rejected",
    HangupCause.UNREACHABLE: "congestion",
    HangupCause.CANCELLED: "normal",  # Asterisk sends CANCEL for any hangup of a leg still ringing
}

_MEDIA_SCHEMES = ("sound:", "recording:", "number:", "digits:", "characters:", "tone:")
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,79}$")
_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")


class AriError(RuntimeError):
    """ARI refused a request (4xx/5xx); `status` is the HTTP status."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"ARI {method} {path} -> {status}: {message}")
        self.status = status


def cause_from_q850(cause: int) -> tuple[HangupCause, int | None]:
    """Map a Q.850 cause to our HangupCause and the SIP code it corresponds to."""
    if cause in _Q850:
        return _Q850[cause]
    return (HangupCause.NORMAL, None) if cause == 0 else (HangupCause.REJECTED, None)


def refusal_reason(sip_code: int) -> str:
    """The ARI hangup reason that makes Asterisk answer an INVITE with (about) `sip_code`."""
    if sip_code in _REFUSAL_REASON:
        return _REFUSAL_REASON[sip_code]
    return "failure" if 500 <= sip_code < 600 else "rejected"


def pjsip_endpoint(uri: str, *, trunk: str = "trunk") -> str:
    """A dial string for `POST /channels` from a SIP URI, a tel: URI or a number.

    Convention (docs/asterisk.md): an agent station `sip:<station>@<host>` is the PJSIP endpoint named
    `<station>` (pjsip.conf has one endpoint + AOR per station); an outside number (`tel:+1...`, bare digits,
    or `sip:<number>@<trunk>`) goes out through the `trunk` endpoint as `PJSIP/<number>@<trunk>`. Anything that could smuggle a second destination into the dial
    (`&`, `/`, spaces, ...) is refused: the outbound path is a toll-fraud surface.
    """
    text = uri.strip()
    if text.startswith("PJSIP/"):
        rest = text[len("PJSIP/") :]
        if "&" in rest or not rest:
            raise ValueError(f"not a single PJSIP destination: {uri!r}")
        return text
    lower = text.lower()
    if lower.startswith("tel:"):
        number = text[4:].split(";", 1)[0]
        if not _NUMBER.match(number):
            raise ValueError(f"not a dialable number: {uri!r}")
        return f"PJSIP/{number}@{trunk}"
    if _NUMBER.match(text):
        return f"PJSIP/{text}@{trunk}"
    if lower.startswith(("sip:", "sips:")):
        body = text.split(":", 1)[1].split(";", 1)[0]
        user, sep, host = body.partition("@")
        if not sep or not user:
            raise ValueError(f"SIP URI without a user part: {uri!r}")
        if _NUMBER.match(user) and host.split(":", 1)[0].lower() in ("", trunk.lower()):
            return f"PJSIP/{user}@{trunk}"
        if not _ENDPOINT_NAME.match(user):
            raise ValueError(f"station name not usable as a PJSIP endpoint: {uri!r}")
        return f"PJSIP/{user}"
    raise ValueError(f"cannot dial {uri!r}: expected sip:, tel:, a number or PJSIP/...")


def media_uri(media: str) -> str:
    """ARI media URI: ARI schemes pass through; a file path becomes `sound:<path without extension>`."""
    if media.startswith(_MEDIA_SCHEMES):
        return media
    path = PurePosixPath(media)
    return f"sound:{path.with_suffix('') if path.suffix else path}"


def recording_name(path: str) -> tuple[str, str]:
    """(name, format) for ARI record. ARI names live in Asterisk's recording directory and travel in URL path
    segments (`/recordings/live/{name}/stop`), so the name is one segment: a relative path's directories are
    joined with `-` (`calls/2026/c1.wav` -> `calls-2026-c1`); an absolute path keeps only its file name."""
    p = PurePosixPath(path)
    fmt = p.suffix.lstrip(".") or "wav"
    stem = p.with_suffix("") if p.suffix else p
    parts = [stem.name] if p.is_absolute() else list(stem.parts)
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"unusable recording path: {path!r}")
    name = "-".join(parts)
    if not _ENDPOINT_NAME.match(name):
        raise ValueError(f"unusable recording name: {name!r}")
    return name, fmt


@dataclass
class _LegState:
    leg: Leg
    answered: bool = False
    hangup_cause: HangupCause | None = None  # the cause we asked for, when we hung it up
    remote_q850: int = 0  # from ChannelHangupRequest, in case ChannelDestroyed reports 0
    snoop: bool = False
    ended: bool = False


@dataclass
class _Playback:
    leg_id: str
    media: str
    loop: bool
    stopped: bool = False


@dataclass
class _Hold:
    bridge_id: str | None
    playback_id: str | None = None


@dataclass
class _Stats:
    connects: int = 0
    events: int = 0
    bad_events: int = 0
    resynced_legs: int = 0
    errors: list[str] = field(default_factory=list)


class AriTelephony:
    """`Telephony` on Asterisk via ARI (REST + events WebSocket), as Stasis application `app`."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        app: str = "switchboard",
        *,
        trunk: str = "trunk",
        request_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.app = app
        self.trunk = trunk
        self._auth = (user, password)
        self._request_timeout_s = request_timeout_s
        self.leg_limit: int | None = None  # Asterisk sizes itself; its refusals come back as hangup causes
        self._connect_timeout_s = connect_timeout_s
        self._backoff = (backoff_min_s, backoff_max_s)
        self._events: CallEvents | None = None
        self._http: httpx.AsyncClient | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._legs: dict[str, _LegState] = {}
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._bridges: dict[str, set[str]] = {}
        self._leg_bridge: dict[str, str] = {}
        self._playbacks: dict[str, _Playback] = {}
        self._holds: dict[str, _Hold] = {}
        self.stats = _Stats()

    @classmethod
    def from_settings(cls, settings: Any) -> AriTelephony:
        return cls(settings.ari_url, settings.ari_user, settings.ari_password, settings.ari_app)

    # ---- lifecycle -----------------------------------------------------------------------------------------

    async def start(self, events: CallEvents) -> None:
        """Connect the events WebSocket (the app exists in Asterisk only while connected), then return."""
        self._events = events
        self._stopping = False
        self._http = httpx.AsyncClient(base_url=self.url, auth=self._auth, timeout=self._request_timeout_s)
        self._reader = asyncio.create_task(self._read_events(), name=f"ari-events-{self.app}")
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout_s)
        except TimeoutError:
            await self.stop()
            raise ConnectionError(f"ARI events WebSocket at {self._events_url()} did not connect") from None

    async def stop(self) -> None:
        """Hang up every leg we hold, close the WebSocket and the HTTP client."""
        self._stopping = True
        if self._http is not None:
            for leg_id, state in list(self._legs.items()):
                if not state.ended:
                    try:
                        await self._delete(f"/channels/{leg_id}", {"reason": "normal"})
                    except (AriError, httpx.HTTPError) as error:  # Asterisk gone: nothing left to hang up
                        log.warning("hangup of %s at stop failed: %s", leg_id, error)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        chains = list(self._chains.values())
        for task in chains:
            task.cancel()
        await asyncio.gather(*chains, return_exceptions=True)
        self._chains.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._connected.clear()
        self._legs.clear()
        self._bridges.clear()
        self._leg_bridge.clear()
        self._playbacks.clear()
        self._holds.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    def active_legs(self) -> list[str]:
        return [leg_id for leg_id, state in self._legs.items() if not state.ended]

    # ---- call control --------------------------------------------------------------------------------------

    async def answer(self, leg_id: str) -> None:
        await self._post(f"/channels/{leg_id}/answer")

    async def hangup(self, leg_id: str, cause: HangupCause = HangupCause.NORMAL) -> None:
        state = self._legs.get(leg_id)
        if state is not None and state.hangup_cause is None:
            unanswered_out = state.leg.direction is LegDirection.OUTBOUND and not state.answered
            state.hangup_cause = HangupCause.CANCELLED if unanswered_out else cause
        await self._delete(f"/channels/{leg_id}", {"reason": _HANGUP_REASON[cause]})

    async def originate(
        self, uri: str, *, caller_id: str, timeout_s: float, leg_id: str | None = None
    ) -> str:
        endpoint = pjsip_endpoint(uri, trunk=self.trunk)
        leg_id = leg_id or f"sb-{uuid.uuid4().hex}"
        if leg_id in self._legs or not _ENDPOINT_NAME.match(leg_id):  # it travels in URL paths
            raise ValueError(f"leg id {leg_id!r} is in use or not usable as an ARI channel id")
        leg = Leg(
            id=leg_id, direction=LegDirection.OUTBOUND, remote_uri=uri, dialled=uri, caller_id=caller_id
        )
        self._legs[leg_id] = _LegState(leg)  # before the request: its events may beat the response
        params = {
            "endpoint": endpoint,
            "app": self.app,
            "appArgs": OUTBOUND_ARG,
            "callerId": caller_id,
            "timeout": max(1, round(timeout_s)),
            "channelId": leg_id,
        }
        try:
            await self._request("POST", "/channels", params)
        except (AriError, httpx.HTTPError) as error:
            # Asterisk refused to create the channel (unknown endpoint, no such station): report it the same
            # way as a station that does not answer the INVITE, so the controller's RONA path handles it.
            log.warning("originate to %s failed: %s", endpoint, error)
            self._legs[leg_id].hangup_cause = HangupCause.UNREACHABLE
            self._chain(leg_id, lambda: self._report_ended(leg_id, HangupCause.UNREACHABLE, None))
        return leg_id

    async def play(self, leg_id: str, media: str, *, loop: bool = False) -> str:
        playback_id = f"sb-pb-{uuid.uuid4().hex}"
        self._playbacks[playback_id] = _Playback(leg_id, media_uri(media), loop)
        try:
            await self._start_playback(playback_id)
        except BaseException:
            self._playbacks.pop(playback_id, None)
            raise
        return playback_id

    async def stop_playback(self, playback_id: str) -> None:
        playback = self._playbacks.pop(playback_id, None)
        if playback is not None:
            playback.stopped = True
        await self._delete(f"/playbacks/{playback_id}")

    async def bridge(self, leg_ids: list[str]) -> str:
        bridge_id = f"sb-br-{uuid.uuid4().hex}"
        await self._post("/bridges", {"type": "mixing", "bridgeId": bridge_id, "name": "switchboard"})
        self._bridges[bridge_id] = set()
        if leg_ids:
            await self._post(f"/bridges/{bridge_id}/addChannel", {"channel": list(leg_ids)})
            for leg_id in leg_ids:
                self._enter(bridge_id, leg_id)
        return bridge_id

    async def add_to_bridge(self, bridge_id: str, leg_id: str) -> None:
        await self._post(f"/bridges/{bridge_id}/addChannel", {"channel": [leg_id]})
        self._enter(bridge_id, leg_id)

    async def remove_from_bridge(self, bridge_id: str, leg_id: str) -> None:
        await self._post(f"/bridges/{bridge_id}/removeChannel", {"channel": [leg_id]})
        self._leave(bridge_id, leg_id)

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._delete(f"/bridges/{bridge_id}")
        for leg_id in self._bridges.pop(bridge_id, set()):
            self._leg_bridge.pop(leg_id, None)

    async def hold(self, leg_id: str, music: str | None = None) -> None:
        """Caller hears hold audio and the other side hears nothing: take the leg out of its bridge and play
        music on hold to it (`music`: None for the default MOH class, `moh:<class>`, or media to loop)."""
        if leg_id in self._holds:
            return
        bridge_id = self._leg_bridge.get(leg_id)
        if bridge_id is not None:
            await self.remove_from_bridge(bridge_id, leg_id)
        hold = _Hold(bridge_id)
        self._holds[leg_id] = hold
        if music is None or music.startswith("moh:"):
            params = {"mohClass": music[4:]} if music else {}
            await self._post(f"/channels/{leg_id}/moh", params)
        else:
            hold.playback_id = await self.play(leg_id, music, loop=True)

    async def resume(self, leg_id: str) -> None:
        hold = self._holds.pop(leg_id, None)
        if hold is None:
            return
        if hold.playback_id is not None:
            await self.stop_playback(hold.playback_id)
        else:
            await self._delete(f"/channels/{leg_id}/moh")
        if hold.bridge_id is not None and hold.bridge_id in self._bridges:
            await self.add_to_bridge(hold.bridge_id, leg_id)

    async def send_dtmf(self, leg_id: str, digits: str) -> None:
        await self._post(f"/channels/{leg_id}/dtmf", {"dtmf": digits})

    async def record(self, leg_or_bridge_id: str, path: str) -> str:
        name, fmt = recording_name(path)
        kind = "bridges" if leg_or_bridge_id in self._bridges else "channels"
        await self._post(
            f"/{kind}/{leg_or_bridge_id}/record",
            {"name": name, "format": fmt, "ifExists": "overwrite", "beep": False},
        )
        return name

    async def stop_recording(self, recording_id: str) -> None:
        await self._post(f"/recordings/live/{recording_id}/stop", ok_missing=True)

    async def snoop(self, leg_id: str, spy: str = "both", whisper: str = "none") -> str:
        """A snoop channel on `leg_id` (for supervisor listen/whisper): bridge it with the supervisor's leg.
        `spy`/`whisper` are ARI directions: none, both, in, out. Returns the snoop channel's leg id."""
        snoop_id = f"sb-snoop-{uuid.uuid4().hex}"
        leg = Leg(id=snoop_id, direction=LegDirection.OUTBOUND, remote_uri=f"snoop:{leg_id}", dialled=leg_id)
        self._legs[snoop_id] = _LegState(leg, answered=True, snoop=True)
        try:
            await self._post(
                f"/channels/{leg_id}/snoop",
                {"spy": spy, "whisper": whisper, "app": self.app, "appArgs": SNOOP_ARG, "snoopId": snoop_id},
            )
        except BaseException:
            self._legs.pop(snoop_id, None)
            raise
        return snoop_id

    # ---- REST ----------------------------------------------------------------------------------------------

    async def _post(
        self, path: str, params: dict[str, Any] | None = None, *, ok_missing: bool = False
    ) -> Any:
        return await self._request("POST", path, params, ok_missing=ok_missing)

    async def _delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        # Deleting what is already gone (a channel that hung up meanwhile) is not an error for the caller.
        return await self._request("DELETE", path, params, ok_missing=True)

    async def _request(
        self, method: str, path: str, params: dict[str, Any] | None = None, *, ok_missing: bool = False
    ) -> Any:
        if self._http is None:
            raise RuntimeError("AriTelephony is not started")
        response = await self._http.request(method, path, params=_query(params or {}))
        if response.status_code == 404 and ok_missing:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise AriError(method, path, response.status_code, str(message))
        if not response.content:
            return None
        return response.json()

    async def _start_playback(self, playback_id: str) -> None:
        playback = self._playbacks[playback_id]
        await self._post(f"/channels/{playback.leg_id}/play/{playback_id}", {"media": [playback.media]})

    def _enter(self, bridge_id: str, leg_id: str) -> None:
        self._bridges.setdefault(bridge_id, set()).add(leg_id)
        self._leg_bridge[leg_id] = bridge_id

    def _leave(self, bridge_id: str, leg_id: str) -> None:
        self._bridges.get(bridge_id, set()).discard(leg_id)
        if self._leg_bridge.get(leg_id) == bridge_id:
            del self._leg_bridge[leg_id]

    # ---- events --------------------------------------------------------------------------------------------

    def _events_url(self) -> str:
        base = re.sub(r"^http", "ws", self.url)
        return f"{base}/events?app={quote(self.app, safe='')}"

    async def _read_events(self) -> None:
        """Keep the events WebSocket up: reconnect with capped exponential backoff and jitter."""
        delay = self._backoff[0]
        token = base64.b64encode(f"{self._auth[0]}:{self._auth[1]}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        first = True
        while not self._stopping:
            try:
                async with connect(
                    self._events_url(),
                    additional_headers=headers,
                    open_timeout=self._connect_timeout_s,
                    ping_interval=20,
                    ping_timeout=20,
                    max_size=2**22,
                ) as ws:
                    self.stats.connects += 1
                    delay = self._backoff[0]
                    if not first:
                        await self._resync()
                    first = False
                    self._connected.set()
                    async for message in ws:
                        self._on_message(message)
            except asyncio.CancelledError:
                raise
            except (OSError, WebSocketException, TimeoutError, AriError, httpx.HTTPError) as error:
                log.warning("ARI events WebSocket: %s; reconnecting in %.1fs", error, delay)
            self._connected.clear()
            if self._stopping:
                break
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._backoff[1])

    async def _resync(self) -> None:
        """After a reconnect: legs whose ChannelDestroyed we missed while disconnected are gone; say so."""
        listed = await self._request("GET", "/channels")
        alive = {channel["id"] for channel in listed or []}
        for leg_id, state in list(self._legs.items()):
            if not state.ended and leg_id not in alive:
                self.stats.resynced_legs += 1
                self._chain(
                    leg_id,
                    functools.partial(
                        self._report_ended, leg_id, state.hangup_cause or HangupCause.NORMAL, None
                    ),
                )

    def _on_message(self, message: str | bytes) -> None:
        try:
            event = json.loads(message)
            kind = event["type"]
        except (ValueError, KeyError, TypeError):
            self.stats.bad_events += 1
            log.warning("unreadable ARI event: %.200r", message)
            return
        self.stats.events += 1
        handler = self._HANDLERS.get(kind)
        if handler is None:
            return
        channel = event.get("channel") or {}
        leg_id = channel.get("id") if isinstance(channel, dict) else None
        if kind.startswith("Playback"):
            leg_id = (event.get("playback") or {}).get("target_uri", "").removeprefix("channel:") or None
        key = leg_id or "-"
        self._chain(key, lambda: handler(self, event))

    def _chain(self, key: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` after the previous step queued for the same leg (per-leg order, no global blocking)."""
        previous = self._chains.get(key)

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.stats.errors.append(f"{type(error).__name__}: {error}")
                log.exception("ARI event handling failed")
            finally:
                if self._chains.get(key) is task:
                    del self._chains[key]

        task = asyncio.create_task(run())
        self._chains[key] = task

    async def _on_stasis_start(self, event: dict[str, Any]) -> None:
        channel = event["channel"]
        leg_id = channel["id"]
        args = list(event.get("args") or [])
        state = self._legs.get(leg_id)
        if state is not None:
            if state.leg.direction is LegDirection.OUTBOUND and not state.snoop:
                await self._mark_answered(state)  # an originated channel enters Stasis when it answers
            return
        if args and args[0] in (OUTBOUND_ARG, SNOOP_ARG):
            return  # ours, from before a restart: not a new caller
        dialled = args[0] if args else (channel.get("dialplan") or {}).get("exten", "")
        caller = channel.get("caller") or {}
        leg = Leg(
            id=leg_id,
            direction=LegDirection.INBOUND,
            remote_uri=channel.get("name", ""),
            dialled=dialled,
            caller_id=caller.get("number", ""),
            headers={str(k): str(v) for k, v in (channel.get("channelvars") or {}).items()},
        )
        state = _LegState(leg)
        self._legs[leg_id] = state
        assert self._events is not None
        try:
            admission = await self._events.incoming(leg)
        except Exception:
            log.exception("incoming() failed; refusing the call")
            admission = Admission(accept=False, sip_code=500, reason="internal error")
        if state.ended:
            return  # the caller gave up while we decided
        if admission.accept:
            await self._post(f"/channels/{leg_id}/answer", ok_missing=True)  # 404: the caller just hung up
        else:
            state.hangup_cause = HangupCause.REJECTED
            await self._delete(f"/channels/{leg_id}", {"reason": refusal_reason(admission.sip_code)})

    async def _on_state_change(self, event: dict[str, Any]) -> None:
        channel = event["channel"]
        state = self._legs.get(channel["id"])
        if (
            state is not None
            and channel.get("state") == "Up"
            and state.leg.direction is LegDirection.OUTBOUND
        ):
            await self._mark_answered(state)

    async def _mark_answered(self, state: _LegState) -> None:
        if state.answered or state.ended or state.snoop:
            return
        state.answered = True
        assert self._events is not None
        await self._events.answered(state.leg.id)

    async def _on_hangup_request(self, event: dict[str, Any]) -> None:
        state = self._legs.get(event["channel"]["id"])
        if state is not None and event.get("cause"):
            state.remote_q850 = int(event["cause"])

    async def _on_destroyed(self, event: dict[str, Any]) -> None:
        leg_id = event["channel"]["id"]
        state = self._legs.get(leg_id)
        if state is None:
            return
        q850 = int(event.get("cause") or 0) or state.remote_q850
        mapped, sip_code = cause_from_q850(q850)
        tech = event.get("tech_cause")
        if isinstance(tech, int) and 100 <= tech < 700:
            sip_code = tech
        if state.hangup_cause is not None:  # we hung it up: report what we asked for
            mapped, sip_code = state.hangup_cause, None
        await self._report_ended(leg_id, mapped, sip_code)

    async def _report_ended(self, leg_id: str, cause: HangupCause, sip_code: int | None) -> None:
        state = self._legs.get(leg_id)
        if state is None or state.ended:
            return
        state.ended = True
        del self._legs[leg_id]
        self._holds.pop(leg_id, None)
        bridge_id = self._leg_bridge.pop(leg_id, None)
        if bridge_id is not None:
            self._bridges.get(bridge_id, set()).discard(leg_id)
        for playback_id in [p for p, pb in self._playbacks.items() if pb.leg_id == leg_id]:
            del self._playbacks[playback_id]
        if state.snoop:
            return
        assert self._events is not None
        await self._events.ended(leg_id, cause, sip_code)

    async def _on_dtmf(self, event: dict[str, Any]) -> None:
        leg_id = event["channel"]["id"]
        if leg_id in self._legs and self._events is not None:
            await self._events.dtmf(leg_id, str(event["digit"]))

    async def _on_playback_finished(self, event: dict[str, Any]) -> None:
        playback_id = event["playback"]["id"]
        playback = self._playbacks.get(playback_id)
        if playback is None:
            return
        if playback.loop and not playback.stopped and playback.leg_id in self._legs:
            try:
                await self._start_playback(playback_id)  # ARI has no loop flag: play the same id again
            except AriError as error:
                log.info("looped playback %s not restarted: %s", playback_id, error)
                self._playbacks.pop(playback_id, None)
        else:
            self._playbacks.pop(playback_id, None)

    async def _on_channel_left_bridge(self, event: dict[str, Any]) -> None:
        self._leave(event["bridge"]["id"], event["channel"]["id"])

    _HANDLERS: ClassVar[dict[str, Callable[[AriTelephony, dict[str, Any]], Awaitable[None]]]] = {
        "StasisStart": _on_stasis_start,
        "ChannelStateChange": _on_state_change,
        "ChannelHangupRequest": _on_hangup_request,
        "ChannelDestroyed": _on_destroyed,
        "ChannelDtmfReceived": _on_dtmf,
        "PlaybackFinished": _on_playback_finished,
        "ChannelLeftBridge": _on_channel_left_bridge,
    }


def _query(params: dict[str, Any]) -> dict[str, str]:
    """ARI query strings: booleans as true/false, allowMultiple values comma-separated, no Nones."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out
