"""Embedded SIP back end (pjsua2): the default `Telephony`, no PBX needed.

pjsua2 is not thread-safe in the way asyncio wants, so one dedicated thread owns the `Endpoint`
(`threadCnt=0`, `mainThreadOnly=True`): it polls `libHandleEvents()` and runs the commands the asyncio side
puts on its queue. Everything pjsua2 reports (new call, answered, ended, media up, DTMF) is marshalled
back to the event loop with `loop.call_soon_threadsafe` and delivered to the `CallEvents` as tasks.

Media: every call's audio is a port on pjmedia's conference bridge. A bridge connects the legs' ports
both ways; playback is a file player port transmitting to a leg; hold stops the bridge paths of a leg and
plays hold audio to it. Connections asked for before a leg's media is up are applied when it comes up.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pjsua2 as pj

from engine.telephony.protocol import Admission, CallEvents, HangupCause, Leg, LegDirection

log = logging.getLogger("switchboard.sip")

T = TypeVar("T")

# SIP status of a failed outbound leg -> why it ended
_CAUSE_OF_CODE = {486: HangupCause.BUSY, 600: HangupCause.BUSY, 408: HangupCause.NO_ANSWER,
                  480: HangupCause.NO_ANSWER, 487: HangupCause.CANCELLED, 603: HangupCause.REJECTED,
                  404: HangupCause.UNREACHABLE, 503: HangupCause.UNREACHABLE}
# our hang-up cause -> the final response an unanswered inbound leg gets
_CODE_OF_CAUSE = {HangupCause.BUSY: 486, HangupCause.REJECTED: 603, HangupCause.UNREACHABLE: 503,
                  HangupCause.NO_ANSWER: 480, HangupCause.CANCELLED: 487, HangupCause.NORMAL: 480}
_DTMF_IS_END = 1 << 1  # PJMEDIA_STREAM_DTMF_IS_END: the RFC 4733 event's end (sent three times, reported once)
_REQUEST_URI_USER = re.compile(r"^INVITE\s+sips?:([^@;>\s]+)@", re.IGNORECASE)
_URI_USER = re.compile(r"sips?:([^@;>\s]+)@")


@dataclass(eq=False)
class _LegState:
    """What the pjsua thread knows about one leg (touched only on that thread)."""

    leg: Leg
    call: _Call
    media: Any = None  # pj.AudioMedia once the leg's audio is active
    bridge: str | None = None
    held: bool = False
    players: set[str] = field(default_factory=set)  # playback ids transmitting to this leg
    recorders: set[str] = field(default_factory=set)  # recording ids this leg transmits to
    confirmed: bool = False
    local_cause: HangupCause | None = None  # set when we hung up, so `ended` reports our reason


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, owner: PjsuaTelephony, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID):
        super().__init__(acc, call_id)
        self.owner = owner
        self.leg_id = ""

    def onCallState(self, prm: Any) -> None:
        self.owner._on_call_state(self)

    def onCallMediaState(self, prm: Any) -> None:
        self.owner._on_media_state(self)

    def onDtmfDigit(self, prm: Any) -> None:
        # SIP INFO (application/dtmf-relay) arrives here; RFC 4733 events come to onDtmfEvent, which pjsua
        # calls instead for them once the application takes events (so each digit is reported once)
        if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO:
            self.owner._on_dtmf(self, prm.digit)

    def onDtmfEvent(self, prm: Any) -> None:
        if prm.method == pj.PJSUA_DTMF_METHOD_RFC2833 and prm.flags & _DTMF_IS_END:
            self.owner._on_dtmf(self, prm.digit)


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, owner: PjsuaTelephony):
        super().__init__()
        self.owner = owner

    def onIncomingCall(self, prm: Any) -> None:
        self.owner._on_incoming(self, prm)


class PjsuaTelephony:
    """`Telephony` over pjsua2. One per process (pjsua2 allows one Endpoint)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 5060, rtp_port_start: int = 20000,
                 rtp_port_range: int = 2000, max_legs: int = 250, log_level: int = 1):
        self.host, self.port = host, port
        self.rtp_port_start, self.rtp_port_range = rtp_port_start, rtp_port_range
        self.max_legs, self.log_level = max_legs, log_level
        self._events: CallEvents | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = False
        self._ready: Future[None] = Future()
        # pjsua-thread state
        self._ep: Any = None
        self._acc: Any = None
        self._legs: dict[str, _LegState] = {}
        self._players: dict[str, tuple[Any, str]] = {}  # playback id -> (player, leg id)
        self._recorders: dict[str, tuple[Any, list[str]]] = {}  # recording id -> (recorder, legs)
        self._bridges: dict[str, list[str]] = {}
        self._graveyard: list[Any] = []  # pjsua2 objects to drop outside their own callbacks
        self._ids = itertools.count(1)
        # shared with the asyncio side
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._ring_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hold_music: dict[str, str] = {}  # held leg -> its hold-audio playback
        # calls pjsua holds at most: its compiled PJSUA_MAX_CALLS (4 in the pjsua2-python 2.15 wheels, over
        # any uaConfig.maxCalls) is not readable from Python, so it is learned from the first PJ_ETOOMANY
        self.leg_limit: int | None = None

    # ------------------------------------------------------------------------------------------
    # lifecycle
    async def start(self, events: CallEvents) -> None:
        self._events = events
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="pjsua2", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(self._ready)
        log.info("sip listening", extra={"host": self.host, "port": self.port, "transports": "udp,tcp"})

    async def stop(self) -> None:
        if self._thread is None:
            return
        for h in self._ring_timers.values():
            h.cancel()
        self._ring_timers.clear()
        self._running = False
        await asyncio.to_thread(self._thread.join, 10)
        self._thread = None
        for t in list(self._tasks):
            t.cancel()

    def _run(self) -> None:
        try:
            self._init_endpoint()
        except Exception as exc:  # bind failure and the like: tell start()
            log.error("sip start failed", extra={"error": _err(exc)})
            self._ready.set_exception(RuntimeError(f"SIP start failed: {_err(exc)}"))
            self._destroy()
            return
        self._ready.set_result(None)
        while self._running:
            try:
                self._ep.libHandleEvents(10)
                self._drain()
            except Exception:
                log.exception("sip loop error")
        self._shutdown()

    def _init_endpoint(self) -> None:
        ep = pj.Endpoint()
        self._ep = ep
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = self.max_legs
        cfg.uaConfig.userAgent = "Switchboard"
        cfg.logConfig.level = self.log_level
        cfg.logConfig.consoleLevel = self.log_level
        cfg.medConfig.noVad = True
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.channelCount = 1
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.maxMediaPorts = self.max_legs * 2 + 64
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        for kind in (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP):
            tc = pj.TransportConfig()
            tc.port = self.port
            tc.boundAddress = self.host
            tc.publicAddress = self.host
            ep.transportCreate(kind, tc)
        ep.libStart()
        for codec in ep.codecEnum2():  # G.711 only: cheap, and what every phone speaks
            prio = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}.get(codec.codecId, 0)
            ep.codecSetPriority(codec.codecId, prio)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:switchboard@{self.host}:{self.port}"
        acfg.mediaConfig.transportConfig.port = self.rtp_port_start
        acfg.mediaConfig.transportConfig.portRange = self.rtp_port_range
        acfg.mediaConfig.transportConfig.boundAddress = self.host
        acfg.mediaConfig.transportConfig.publicAddress = self.host
        # no re-INVITE to lock one codec when the far end answers with several: a phone or SIPp that does
        # not answer that re-INVITE kept the call's pjsua slot forever (only PJSUA_MAX_CALLS of them)
        acfg.mediaConfig.lockCodecEnabled = False
        acc = _Account(self)
        acc.create(acfg, True)
        self._acc = acc

    def _shutdown(self) -> None:
        try:
            self._ep.hangupAllCalls()
            for _ in range(30):  # let the BYEs/CANCELs go out
                self._ep.libHandleEvents(10)
                if not self._legs:
                    break
        except Exception:
            log.exception("sip hangup at stop failed")
        self._destroy()

    def _destroy(self) -> None:
        # every pjsua2 object must be gone before libDestroy or it aborts
        for player, _ in self._players.values():
            self._graveyard.append(player)
        for rec, _ in self._recorders.values():
            self._graveyard.append(rec)
        self._players.clear()
        self._recorders.clear()
        for st in self._legs.values():
            st.media = None
            self._graveyard.append(st.call)
        self._legs.clear()
        with self._lock:
            self._live.clear()
        self._graveyard.clear()
        self._acc = None
        if self._ep is not None:
            try:
                self._ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
            except Exception:
                log.exception("libDestroy failed")
            self._ep = None

    # ------------------------------------------------------------------------------------------
    # marshalling
    def _drain(self) -> None:
        self._graveyard.clear()
        while True:
            try:
                job = self._commands.get_nowait()
            except queue.Empty:
                return
            job()

    async def _on_thread(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the pjsua thread and return its result."""
        if not self._running:
            raise RuntimeError("SIP back end is not running")
        fut: Future[T] = Future()

        def job() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - hand every failure back to the caller
                fut.set_exception(exc)

        self._commands.put(job)
        return await asyncio.wrap_future(fut)

    def _emit(self, make: Callable[[CallEvents], Any]) -> None:
        """From the pjsua thread: run a CallEvents coroutine on the loop (in the order emitted)."""
        loop, events = self._loop, self._events
        if loop is None or events is None:
            return

        def spawn() -> None:
            task = loop.create_task(make(events))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

        try:
            loop.call_soon_threadsafe(spawn)
        except RuntimeError:  # the loop is closed: we are shutting down
            pass

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call event handler failed", exc_info=task.exception())

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    # ------------------------------------------------------------------------------------------
    # pjsua callbacks (pjsua thread)
    def _on_incoming(self, acc: Any, prm: Any) -> None:
        call = _Call(self, acc, prm.callId)
        ci = call.getInfo()
        msg = prm.rdata.wholeMsg
        first = msg.split("\r\n", 1)[0] if msg else ""
        m = _REQUEST_URI_USER.match(first) or _URI_USER.search(ci.localUri)
        dialled = m.group(1) if m else ""
        cm = _URI_USER.search(ci.remoteUri)
        leg = Leg(id=self._new_id("in"), direction=LegDirection.INBOUND, remote_uri=ci.remoteUri,
                  dialled=dialled, caller_id=cm.group(1) if cm else "",
                  headers={"Call-ID": ci.callIdString})
        call.leg_id = leg.id
        self._legs[leg.id] = _LegState(leg, call)
        with self._lock:
            self._live.add(leg.id)
        self._emit(lambda ev: self._admit(ev, leg))

    async def _admit(self, events: CallEvents, leg: Leg) -> None:
        try:
            decision = await events.incoming(leg)
        except Exception:
            log.exception("admission failed", extra={"leg": leg.id})
            decision = Admission(False, 500, "internal error")
        if not decision.accept:
            try:
                await self._on_thread(lambda: self._refuse(leg.id, decision.sip_code, decision.reason))
            except RuntimeError:
                pass

    def _refuse(self, leg_id: str, code: int, reason: str) -> None:
        st = self._legs.get(leg_id)
        if st is None:
            return
        st.local_cause = HangupCause.REJECTED
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        if reason:
            prm.reason = reason
        st.call.hangup(prm)

    def _on_call_state(self, call: _Call) -> None:
        st = self._legs.get(call.leg_id)
        if st is None:
            return
        ci = call.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not st.confirmed:
            st.confirmed = True
            if st.leg.direction is LegDirection.OUTBOUND:
                self._emit(lambda ev: ev.answered(st.leg.id))
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            code = int(ci.lastStatusCode)
            if st.local_cause is not None:
                cause = st.local_cause
            elif st.confirmed:
                cause = HangupCause.NORMAL
            elif st.leg.direction is LegDirection.INBOUND:
                cause = HangupCause.CANCELLED if code == 487 else HangupCause.NORMAL
            else:
                cause = _CAUSE_OF_CODE.get(code, HangupCause.UNREACHABLE if code >= 400 or code == 0
                                           else HangupCause.REJECTED)
            self._forget(st)
            leg_id = st.leg.id
            self._emit(lambda ev: ev.ended(leg_id, cause, code or None))

    def _forget(self, st: _LegState) -> None:
        # the ended call's conference port went with it, connections and all: stopping transmissions on its
        # stale slot here cut the audio of the legs still bridged (a 3-way lost both others), so forget only
        st.media = None
        for pid in list(st.players):
            self._drop_player(pid)
        for rid in list(st.recorders):
            rec_legs = self._recorders.get(rid)
            if rec_legs is not None and st.leg.id in rec_legs[1]:
                rec_legs[1].remove(st.leg.id)
        if st.bridge and st.bridge in self._bridges:
            members = self._bridges[st.bridge]
            if st.leg.id in members:
                members.remove(st.leg.id)
            if not members:  # its last leg went: nothing left to destroy later
                del self._bridges[st.bridge]
        self._legs.pop(st.leg.id, None)
        self._graveyard.append(st.call)  # dropped on the next loop turn, not inside its own callback
        with self._lock:
            self._live.discard(st.leg.id)

    def _on_media_state(self, call: _Call) -> None:
        st = self._legs.get(call.leg_id)
        if st is None:
            return
        ci = call.getInfo()
        media = None
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status in (pj.PJSUA_CALL_MEDIA_ACTIVE,
                                                                   pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                media = call.getAudioMedia(i)
                break
        st.media = media
        if media is None:
            return
        # apply what was asked before the audio was up
        for pid in st.players:
            self._players[pid][0].startTransmit(media)
        for rid in st.recorders:
            media.startTransmit(self._recorders[rid][0])
        self._connect_bridge(st)

    def _on_dtmf(self, call: _Call, digit: str) -> None:
        leg_id = call.leg_id
        self._emit(lambda ev: ev.dtmf(leg_id, digit))

    # ------------------------------------------------------------------------------------------
    # media helpers (pjsua thread)
    def _peers(self, st: _LegState) -> list[_LegState]:
        if st.bridge is None:
            return []
        return [self._legs[x] for x in self._bridges.get(st.bridge, []) if x != st.leg.id and x in self._legs]

    def _connect_bridge(self, st: _LegState) -> None:
        if st.media is None or st.held:
            return
        for peer in self._peers(st):
            if peer.media is not None and not peer.held:
                st.media.startTransmit(peer.media)
                peer.media.startTransmit(st.media)

    def _disconnect_bridge(self, st: _LegState) -> None:
        if st.media is None:
            return
        for peer in self._peers(st):
            if peer.media is not None:
                _quiet(lambda: st.media.stopTransmit(peer.media))
                _quiet(lambda: peer.media.stopTransmit(st.media))

    def _drop_player(self, pid: str) -> None:
        entry = self._players.pop(pid, None)
        if entry is None:
            return
        player, leg_id = entry
        st = self._legs.get(leg_id)
        if st is not None:
            st.players.discard(pid)
            if st.media is not None:
                _quiet(lambda: player.stopTransmit(st.media))
        self._graveyard.append(player)

    def _state(self, leg_id: str) -> _LegState:
        st = self._legs.get(leg_id)
        if st is None:
            raise KeyError(f"no such leg {leg_id!r}")
        return st

    # ------------------------------------------------------------------------------------------
    # Telephony
    async def answer(self, leg_id: str) -> None:
        def do() -> None:
            prm = pj.CallOpParam(True)
            prm.statusCode = 200
            self._state(leg_id).call.answer(prm)

        await self._on_thread(do)

    async def hangup(self, leg_id: str, cause: HangupCause = HangupCause.NORMAL) -> None:
        self._cancel_ring_timer(leg_id)

        def do() -> None:
            st = self._legs.get(leg_id)
            if st is None:
                return  # already gone: hanging up twice is harmless
            if st.local_cause is None:
                st.local_cause = cause
            prm = pj.CallOpParam(True)
            if st.leg.direction is LegDirection.INBOUND and not st.confirmed:
                prm.statusCode = _CODE_OF_CAUSE.get(cause, 480)
            _quiet(lambda: st.call.hangup(prm))

        await self._on_thread(do)

    async def originate(self, uri: str, *, caller_id: str, timeout_s: float, leg_id: str | None = None) -> str:
        new_id = leg_id or self._new_id("out")

        def do() -> None:
            call = _Call(self, self._acc)
            call.leg_id = new_id
            m = _URI_USER.search(uri)
            leg = Leg(id=new_id, direction=LegDirection.OUTBOUND, remote_uri=uri, dialled=m.group(1) if m else uri,
                      caller_id=caller_id)
            st = _LegState(leg, call)
            self._legs[new_id] = st
            with self._lock:
                self._live.add(new_id)
            prm = pj.CallOpParam(True)
            if caller_id:
                h = pj.SipHeader()
                h.hName, h.hValue = "X-Switchboard-Caller", caller_id
                prm.txOption.headers.append(h)
            try:
                call.makeCall(uri, prm)
            except pj.Error as exc:
                if getattr(exc, "status", None) == _PJ_ETOOMANY and self.leg_limit is None:
                    with self._lock:
                        self.leg_limit = len(self._live) - 1  # every other live leg holds a pjsua call
                    log.error("pjsua2 holds no more calls: new calls are refused beyond this limit",
                              extra={"leg_limit": self.leg_limit})
                log.warning("originate failed", extra={"uri": uri, "error": _err(exc)})
                st.local_cause = HangupCause.UNREACHABLE
                self._forget(st)
                self._emit(lambda ev: ev.ended(new_id, HangupCause.UNREACHABLE, None))

        await self._on_thread(do)
        loop = asyncio.get_running_loop()
        # ring timeout: cancel and report NO_ANSWER (harmless if the leg was answered or ended meanwhile)
        self._ring_timers[new_id] = loop.call_later(timeout_s, lambda: self._ring_timeout(new_id))
        return new_id

    def _ring_timeout(self, leg_id: str) -> None:
        self._ring_timers.pop(leg_id, None)

        def do() -> None:
            st = self._legs.get(leg_id)
            if st is None or st.confirmed:
                return
            st.local_cause = HangupCause.NO_ANSWER
            _quiet(lambda: st.call.hangup(pj.CallOpParam(True)))

        if self._running:
            self._commands.put(do)

    def _cancel_ring_timer(self, leg_id: str) -> None:
        h = self._ring_timers.pop(leg_id, None)
        if h is not None:
            h.cancel()

    async def play(self, leg_id: str, media: str, *, loop: bool = False) -> str:
        pid = self._new_id("play")

        def do() -> None:
            st = self._state(leg_id)
            player = pj.AudioMediaPlayer()
            player.createPlayer(media, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
            self._players[pid] = (player, leg_id)
            st.players.add(pid)
            if st.media is not None:
                player.startTransmit(st.media)

        await self._on_thread(do)
        return pid

    async def stop_playback(self, playback_id: str) -> None:
        await self._on_thread(lambda: self._drop_player(playback_id))

    async def bridge(self, leg_ids: list[str]) -> str:
        bid = self._new_id("bridge")

        def do() -> None:
            states = [self._state(x) for x in leg_ids]
            self._bridges[bid] = []
            for st in states:
                self._disconnect_bridge(st)
                st.bridge = bid
                self._bridges[bid].append(st.leg.id)
            for st in states:
                self._connect_bridge(st)

        await self._on_thread(do)
        return bid

    async def add_to_bridge(self, bridge_id: str, leg_id: str) -> None:
        def do() -> None:
            st = self._state(leg_id)
            self._disconnect_bridge(st)
            st.bridge = bridge_id
            self._bridges.setdefault(bridge_id, []).append(leg_id)
            self._connect_bridge(st)

        await self._on_thread(do)

    async def remove_from_bridge(self, bridge_id: str, leg_id: str) -> None:
        def do() -> None:
            st = self._legs.get(leg_id)
            if st is None or st.bridge != bridge_id:
                return
            self._disconnect_bridge(st)
            self._bridges[bridge_id].remove(leg_id)
            st.bridge = None

        await self._on_thread(do)

    async def destroy_bridge(self, bridge_id: str) -> None:
        def do() -> None:
            for leg_id in list(self._bridges.get(bridge_id, [])):
                st = self._legs.get(leg_id)
                if st is not None:
                    self._disconnect_bridge(st)
                    st.bridge = None
            self._bridges.pop(bridge_id, None)

        await self._on_thread(do)

    async def hold(self, leg_id: str, music: str | None = None) -> None:
        def do() -> None:
            st = self._state(leg_id)
            self._disconnect_bridge(st)
            st.held = True

        await self._on_thread(do)
        if music:
            pid = await self.play(leg_id, music, loop=True)
            self._hold_music[leg_id] = pid

    async def resume(self, leg_id: str) -> None:
        pid = self._hold_music.pop(leg_id, None)
        if pid:
            await self.stop_playback(pid)

        def do() -> None:
            st = self._state(leg_id)
            st.held = False
            self._connect_bridge(st)

        await self._on_thread(do)

    async def send_dtmf(self, leg_id: str, digits: str) -> None:
        await self._on_thread(lambda: self._state(leg_id).call.dialDtmf(digits))

    async def record(self, leg_or_bridge_id: str, path: str) -> str:
        rid = self._new_id("rec")

        def do() -> None:
            legs = list(self._bridges.get(leg_or_bridge_id, [])) or [leg_or_bridge_id]
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(path)
            self._recorders[rid] = (rec, legs)
            for x in legs:
                st = self._state(x)
                st.recorders.add(rid)
                if st.media is not None:
                    st.media.startTransmit(rec)

        await self._on_thread(do)
        return rid

    async def stop_recording(self, recording_id: str) -> None:
        def do() -> None:
            entry = self._recorders.pop(recording_id, None)
            if entry is None:
                return
            rec, legs = entry
            for x in legs:
                st = self._legs.get(x)
                if st is not None:
                    st.recorders.discard(recording_id)
                    if st.media is not None:
                        _quiet(lambda: st.media.stopTransmit(rec))
            self._graveyard.append(rec)

        await self._on_thread(do)

    def active_legs(self) -> list[str]:
        with self._lock:
            return sorted(self._live)


def _quiet(fn: Callable[[], Any]) -> None:
    """pjsua2 raises when a port is already gone (the far end hung up first): nothing to undo then."""
    try:
        fn()
    except pj.Error:
        pass


_PJ_ETOOMANY = 70010  # pj_errno.h: "Too many objects of the specified type"


def _err(exc: BaseException) -> str:
    if isinstance(exc, pj.Error):
        return f"{exc.title}: {exc.reason} ({exc.status})"
    return str(exc)
