"""A pjsua2 user agent for the voice tests, run as its own process (pjsua2 allows one Endpoint per process).

    python tests/e2e/sipua.py agent  --port 5071 --play tone600.wav --record-dir out/ [--answer auto|busy|none]
    python tests/e2e/sipua.py caller --port 5081 --dial sip:311@127.0.0.1:5060 --play tone1000.wav \
        --record out/caller.wav [--talk-s 8] [--calls 1] [--dtmf 123 --dtmf-method info --dtmf-after-s 2]

An *agent* is a station: it answers each INVITE (200 after a short ring, 486 busy, or rings forever),
plays its WAV in a loop and records what it hears to call-<n>.wav. A *caller* places calls, plays and
records the same way, and hangs up `--talk-s` seconds after the call is answered (never, if 0; an agent
hangs up the same way when given `--talk-s`). Both print
one JSON object per line on stdout ({"ev": "ready" | "incoming" | "confirmed" | "disconnected" | ...})
and stop cleanly (hanging up what is up) on SIGTERM. The caller exits by itself once all its calls ended.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

import pjsua2 as pj

stopping = False


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class UaCall(pj.Call):  # type: ignore[misc]
    def __init__(self, ua: Ua, acc: Any, call_id: int = pj.PJSUA_INVALID_ID, n: int = 0):
        super().__init__(acc, call_id)
        self.ua, self.n = ua, n
        self.player: Any = None
        self.recorder: Any = None
        self.confirmed_at: float | None = None
        self.done = False
        self.answer_at: float | None = None
        self.dtmf_sent = False

    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = time.monotonic()
            say(ev="confirmed", n=self.n)
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.done:
            self.done = True
            self.player = None
            self.recorder = None  # closes the WAV file (header written on destroy)
            say(ev="disconnected", n=self.n, code=int(ci.lastStatusCode), reason=ci.lastReason)

    def onCallMediaState(self, prm: Any) -> None:
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                aud = self.getAudioMedia(i)
                if self.ua.args.play and self.player is None:
                    self.player = pj.AudioMediaPlayer()
                    self.player.createPlayer(self.ua.args.play, 0)
                    self.player.startTransmit(aud)
                rec_path = self.ua.record_path(self.n)
                if rec_path and self.recorder is None:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(rec_path)
                    aud.startTransmit(self.recorder)
                say(ev="media", n=self.n)

    def onDtmfDigit(self, prm: Any) -> None:
        say(ev="dtmf", n=self.n, digit=prm.digit)


class UaAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, ua: Ua):
        super().__init__()
        self.ua = ua

    def onIncomingCall(self, prm: Any) -> None:
        self.ua.incoming(self, prm)


class Ua:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.calls: list[UaCall] = []
        self.ended = 0
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 64
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.noVad = True
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.ecTailLen = 0
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()
        tc = pj.TransportConfig()
        tc.port = args.port
        tc.boundAddress = tc.publicAddress = "127.0.0.1"
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        self.ep.libStart()
        for codec in self.ep.codecEnum2():
            self.ep.codecSetPriority(codec.codecId, 255 if codec.codecId == "PCMU/8000/1" else 0)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{args.user}@127.0.0.1:{args.port}"
        mt = acfg.mediaConfig.transportConfig
        mt.port = args.rtp_port
        mt.portRange = 200
        mt.boundAddress = mt.publicAddress = "127.0.0.1"
        self.acc = UaAccount(self)
        self.acc.create(acfg, True)

    def record_path(self, n: int) -> str | None:
        if self.args.mode == "agent":
            return f"{self.args.record_dir}/call-{n}.wav" if self.args.record_dir else None
        if not self.args.record:
            return None
        return self.args.record if self.args.calls == 1 else self.args.record.replace(".wav", f"-{n}.wav")

    def incoming(self, acc: Any, prm: Any) -> None:
        call = UaCall(self, acc, prm.callId, n=len(self.calls) + self.ended + 1)
        self.calls.append(call)
        say(ev="incoming", n=call.n, remote=call.getInfo().remoteUri)
        op = pj.CallOpParam(True)
        if self.args.answer == "busy":
            op.statusCode = 486
            call.hangup(op)
            return
        op.statusCode = 180
        call.answer(op)
        if self.args.answer == "auto":
            call.answer_at = time.monotonic() + self.args.ring_s

    def dial(self) -> None:
        for i in range(self.args.calls):
            call = UaCall(self, self.acc, n=i + 1)
            self.calls.append(call)
            call.makeCall(self.args.dial, pj.CallOpParam(True))
            say(ev="dialled", n=call.n, uri=self.args.dial)

    def run(self) -> int:
        if self.args.mode == "caller":
            self.dial()
        say(ev="ready", port=self.args.port)
        hung_up = False
        deadline = time.monotonic() + self.args.max_s
        while True:
            self.ep.libHandleEvents(20)
            self.ended += sum(1 for c in self.calls if c.done)
            self.calls = [c for c in self.calls if not c.done]  # drop ended calls outside their callbacks
            now = time.monotonic()
            for call in self.calls:
                if call.done:
                    continue
                if call.answer_at is not None and now >= call.answer_at:
                    call.answer_at = None
                    op = pj.CallOpParam(True)
                    op.statusCode = 200
                    call.answer(op)
                if (self.args.dtmf and not call.dtmf_sent and call.confirmed_at is not None
                        and now - call.confirmed_at >= self.args.dtmf_after_s):
                    call.dtmf_sent = True
                    self.send_dtmf(call)
                if (self.args.talk_s > 0 and call.confirmed_at is not None
                        and now - call.confirmed_at >= self.args.talk_s):
                    call.confirmed_at = float("inf")  # hang up once
                    call.hangup(pj.CallOpParam(True))
            if (stopping or now > deadline) and not hung_up:
                hung_up = True
                self.ep.hangupAllCalls()
                stop_by = now + 5
            if hung_up and (not self.calls or now > stop_by):
                break
            if self.args.mode == "caller" and not self.calls:
                break
        for _ in range(10):  # let the last BYE/ACK out
            self.ep.libHandleEvents(20)
        return 0

    def send_dtmf(self, call: UaCall) -> None:
        """Keypad digits by SIP INFO (application/dtmf-relay) or RFC 4733 telephone-event packets."""
        prm = pj.CallSendDtmfParam()
        prm.digits = self.args.dtmf
        prm.method = (pj.PJSUA_DTMF_METHOD_SIP_INFO if self.args.dtmf_method == "info"
                      else pj.PJSUA_DTMF_METHOD_RFC2833)
        prm.duration = 160
        call.sendDtmf(prm)
        say(ev="dtmf-sent", n=call.n, digits=self.args.dtmf, method=self.args.dtmf_method)

    def close(self) -> None:
        for c in self.calls:
            c.player = None
            c.recorder = None
        self.calls.clear()
        self.acc = None
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["agent", "caller"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rtp-port", type=int, default=0, help="first RTP port (default: port*... chosen below)")
    p.add_argument("--user", default="ua")
    p.add_argument("--play", help="WAV to send, looped")
    p.add_argument("--record", help="caller: WAV to record what it hears")
    p.add_argument("--record-dir", help="agent: directory for call-<n>.wav")
    p.add_argument("--answer", choices=["auto", "busy", "none"], default="auto")
    p.add_argument("--ring-s", type=float, default=0.3)
    p.add_argument("--dial", help="caller: URI to call")
    p.add_argument("--calls", type=int, default=1)
    p.add_argument("--talk-s", type=float, default=0.0, help="hang up this long after answer (agent too)")
    p.add_argument("--dtmf", help="digits to send once the call is answered")
    p.add_argument("--dtmf-method", choices=["info", "rfc4733"], default="rfc4733")
    p.add_argument("--dtmf-after-s", type=float, default=1.0)
    p.add_argument("--max-s", type=float, default=120.0, help="hang up and exit after this long whatever happens")
    args = p.parse_args()
    if not args.rtp_port:
        args.rtp_port = 30000 + (args.port % 100) * 200
    global stopping

    def on_term(signum: int, frame: Any) -> None:
        global stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    ua = Ua(args)
    try:
        return ua.run()
    finally:
        ua.close()
        say(ev="exit")


if __name__ == "__main__":
    sys.exit(main())
