"""The ARI adapter against the contract-checking stand-in (tests/engine/ari_standin.py).

Every test ends with the stand-in's `violations` empty: no request and no event left the ARI contract.
Waits are bounded polls (`until`), never timing assertions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from ari_standin import AriStandIn

from engine.telephony.ari import (
    AriTelephony,
    cause_from_q850,
    media_uri,
    pjsip_endpoint,
    recording_name,
    refusal_reason,
)
from engine.telephony.protocol import Admission, HangupCause, Leg, LegDirection

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

AGENT = "sip:agent-101@switchboard.example"
AGENT_ENDPOINT = "PJSIP/agent-101"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Controller:
    """A small CallEvents: admits the numbers it serves, refuses others with their SIP code, logs all."""

    def __init__(self) -> None:
        self.serves = {"311", "3112"}
        self.refuse = {"999": 404, "998": 503, "997": 486}
        self.log: list[tuple[Any, ...]] = []
        self.legs: dict[str, Leg] = {}
        self.gates: dict[str, asyncio.Event] = {}

    async def incoming(self, leg: Leg) -> Admission:
        self.legs[leg.id] = leg
        self.log.append(("incoming", leg.id))
        if leg.caller_id in self.gates:  # a slow decision (e.g. a store lookup) for this caller
            await self.gates[leg.caller_id].wait()
        if leg.dialled in self.serves:
            return Admission(accept=True)
        return Admission(accept=False, sip_code=self.refuse.get(leg.dialled, 404), reason="not served")

    async def answered(self, leg_id: str) -> None:
        self.log.append(("answered", leg_id))

    async def ended(self, leg_id: str, cause: HangupCause, sip_code: int | None = None) -> None:
        self.log.append(("ended", leg_id, cause, sip_code))

    async def dtmf(self, leg_id: str, digit: str) -> None:
        self.log.append(("dtmf", leg_id, digit))

    def of(self, kind: str, leg_id: str) -> list[tuple[Any, ...]]:
        return [entry for entry in self.log if entry[0] == kind and entry[1] == leg_id]


@pytest.fixture
async def ari(standin: AriStandIn) -> AsyncIterator[tuple[AriTelephony, Controller]]:
    controller = Controller()
    telephony = AriTelephony(
        standin.url, standin.user, standin.password, "switchboard", backoff_min_s=0.05, backoff_max_s=0.5
    )
    await telephony.start(controller)
    try:
        yield telephony, controller
    finally:
        await telephony.stop()
    assert standin.violations == [], standin.violations
    assert standin.unsimulated == [], standin.unsimulated
    assert telephony.stats.errors == [], telephony.stats.errors


def requests_to(standin: AriStandIn, method: str, path: str) -> list[dict[str, str]]:
    return [query for m, p, query in standin.requests if m == method and p == path]


async def answered_inbound(standin: AriStandIn, controller: Controller, exten: str = "311") -> str:
    leg = standin.inbound_call(exten, caller="4165550100")
    await standin.until(
        lambda: standin.channels.get(leg, {}).get("state") == "Up", "the inbound call answered"
    )
    return leg


async def answered_agent(standin: AriStandIn, telephony: AriTelephony, controller: Controller) -> str:
    standin.outcomes[AGENT_ENDPOINT] = "answer"
    leg = await telephony.originate(AGENT, caller_id="311", timeout_s=20)
    await standin.until(lambda: bool(controller.of("answered", leg)), "the agent leg answered")
    return leg


# ---- inbound -----------------------------------------------------------------------------------------------


async def test_inbound_call_admitted_answered_then_caller_hangs_up(standin, ari) -> None:
    telephony, controller = ari
    leg_id = await answered_inbound(standin, controller)
    leg = controller.legs[leg_id]
    assert (leg.direction, leg.dialled, leg.caller_id) == (LegDirection.INBOUND, "311", "4165550100")
    assert requests_to(standin, "POST", f"/channels/{leg_id}/answer") == [{}]
    assert telephony.active_legs() == [leg_id]

    standin.hangup_remote(leg_id, cause=16)
    await standin.until(lambda: bool(controller.of("ended", leg_id)), "ended")
    assert controller.of("ended", leg_id) == [("ended", leg_id, HangupCause.NORMAL, None)]
    assert telephony.active_legs() == []


async def test_dialled_number_falls_back_to_the_dialplan_extension(standin, ari) -> None:
    _, controller = ari
    leg_id = standin.inbound_call("3112", args=[])  # Stasis(switchboard) with no args
    await standin.until(lambda: standin.channels.get(leg_id, {}).get("state") == "Up", "answered")
    assert controller.legs[leg_id].dialled == "3112"
    standin.hangup_remote(leg_id)


async def test_slow_admission_holds_up_only_its_own_call_and_survives_the_caller_leaving(
    standin, ari
) -> None:
    telephony, controller = ari
    controller.gates["4165550199"] = gate = asyncio.Event()
    slow = standin.inbound_call("311", caller="4165550199")
    await standin.until(lambda: bool(controller.of("incoming", slow)), "the slow call offered")
    fast = await answered_inbound(standin, controller)  # not stuck behind the slow decision
    standin.hangup_remote(slow)  # the caller gives up while we decide
    gate.set()
    await standin.until(lambda: bool(controller.of("ended", slow)), "the slow call ended")
    assert controller.of("ended", slow) == [("ended", slow, HangupCause.NORMAL, None)]
    assert telephony.active_legs() == [fast]
    standin.hangup_remote(fast)
    await standin.until(lambda: telephony.active_legs() == [], "all legs ended")


@pytest.mark.parametrize(
    ("number", "reason", "sip_code"),
    [("999", "unallocated", 404), ("998", "congestion", 503), ("997", "busy", 486)],
)
async def test_refused_call_hung_up_with_the_reason_for_its_sip_code(
    standin, ari, number, reason, sip_code
) -> None:
    telephony, controller = ari
    leg_id = standin.inbound_call(number)
    await standin.until(lambda: leg_id in standin.hangup_reasons, "the refusal")
    assert standin.hangup_reasons[leg_id] == reason == refusal_reason(sip_code)
    assert requests_to(standin, "POST", f"/channels/{leg_id}/answer") == []
    await standin.until(lambda: bool(controller.of("ended", leg_id)), "ended")
    assert controller.of("ended", leg_id)[0][2] is HangupCause.REJECTED
    assert telephony.active_legs() == []


# ---- outbound ----------------------------------------------------------------------------------------------


async def test_originate_to_an_agent_station_that_answers(standin, ari) -> None:
    telephony, controller = ari
    leg_id = await answered_agent(standin, telephony, controller)
    [query] = requests_to(standin, "POST", "/channels")
    assert query == {
        "endpoint": AGENT_ENDPOINT,
        "app": "switchboard",
        "appArgs": "outbound",
        "callerId": "311",
        "timeout": "20",
        "channelId": leg_id,
    }
    await standin.until(lambda: leg_id in standin.stasis, "the leg in Stasis")
    assert controller.of("answered", leg_id) == [
        ("answered", leg_id)
    ]  # once, though Up and StasisStart both came
    assert controller.of("incoming", leg_id) == []  # our own leg is not a new caller
    assert telephony.active_legs() == [leg_id]
    standin.hangup_remote(leg_id)
    await standin.until(lambda: bool(controller.of("ended", leg_id)), "ended")


@pytest.mark.parametrize(
    ("outcome", "cause", "sip_code"),
    [("busy", HangupCause.BUSY, 486), ("no_answer", HangupCause.NO_ANSWER, 480)],
)
async def test_originate_that_fails(standin, ari, outcome, cause, sip_code) -> None:
    telephony, controller = ari
    standin.outcomes[AGENT_ENDPOINT] = outcome
    leg_id = await telephony.originate(AGENT, caller_id="311", timeout_s=15)
    await standin.until(lambda: bool(controller.of("ended", leg_id)), "ended")
    assert controller.of("ended", leg_id) == [("ended", leg_id, cause, sip_code)]
    assert controller.of("answered", leg_id) == []
    assert telephony.active_legs() == []


async def test_cancelling_a_ringing_leg_reports_cancelled(standin, ari) -> None:
    telephony, controller = ari
    leg_id = await telephony.originate(AGENT, caller_id="311", timeout_s=15)  # default outcome: keeps ringing
    await standin.until(lambda: standin.channels.get(leg_id, {}).get("state") == "Ringing", "ringing")
    await telephony.hangup(leg_id)
    await standin.until(lambda: bool(controller.of("ended", leg_id)), "ended")
    assert controller.of("ended", leg_id) == [("ended", leg_id, HangupCause.CANCELLED, None)]
    assert standin.hangup_reasons[leg_id] == "normal"


async def test_originate_refused_by_asterisk_reports_unreachable(standin, ari) -> None:
    telephony, controller = ari
    standin.outcomes["PJSIP/agent-404"] = "missing"  # no such endpoint in pjsip.conf
    leg_id = await telephony.originate("sip:agent-404@switchboard.example", caller_id="311", timeout_s=15)
    await standin.until(lambda: bool(controller.of("ended", leg_id)), "ended")
    assert controller.of("ended", leg_id) == [("ended", leg_id, HangupCause.UNREACHABLE, None)]
    assert telephony.active_legs() == []
    with pytest.raises(ValueError):
        await telephony.originate("sip:agent&PJSIP/premium@x", caller_id="311", timeout_s=15)
    # the dial string that could have reached a second destination never left the adapter
    assert [q["endpoint"] for q in requests_to(standin, "POST", "/channels")] == ["PJSIP/agent-404"]


# ---- in the call -------------------------------------------------------------------------------------------


async def test_bridge_play_hold_record_dtmf_and_hangup(standin, ari) -> None:
    telephony, controller = ari
    caller = await answered_inbound(standin, controller)
    agent = await answered_agent(standin, telephony, controller)

    # comfort audio, looped: when it finishes it is played again under the same id until stopped
    playback = await telephony.play(caller, "/var/lib/switchboard/prompts/comfort.wav", loop=True)
    assert requests_to(standin, "POST", f"/channels/{caller}/play/{playback}") == [
        {"media": "sound:/var/lib/switchboard/prompts/comfort"}
    ]
    standin.finish_playback(playback)
    await standin.until(lambda: playback in standin.playbacks, "the loop to play again")
    await telephony.stop_playback(playback)
    assert playback not in standin.playbacks

    bridge = await telephony.bridge([caller, agent])
    assert standin.bridges[bridge]["bridge_type"] == "mixing"
    assert sorted(standin.bridges[bridge]["channels"]) == sorted([caller, agent])

    await telephony.hold(caller)  # caller hears music and leaves the conversation
    assert standin.moh[caller] == "default" and caller not in standin.bridges[bridge]["channels"]
    await telephony.resume(caller)
    assert caller not in standin.moh and caller in standin.bridges[bridge]["channels"]

    recording = await telephony.record(bridge, "calls/2026/call-42.wav")
    assert standin.live_recordings[recording]["target_uri"] == f"bridge:{bridge}"
    assert standin.live_recordings[recording]["format"] == "wav"
    await telephony.stop_recording(recording)
    assert recording in standin.stored_recordings

    await telephony.send_dtmf(agent, "12#")
    assert standin.dtmf_sent[agent] == ["12#"]
    standin.press(caller, "5")
    await standin.until(lambda: bool(controller.of("dtmf", caller)), "the key press")
    assert controller.of("dtmf", caller) == [("dtmf", caller, "5")]

    await telephony.hangup(agent)  # the agent's side ends: answered leg, normal clearing
    await standin.until(lambda: bool(controller.of("ended", agent)), "agent leg ended")
    assert controller.of("ended", agent) == [("ended", agent, HangupCause.NORMAL, None)]
    assert standin.bridges[bridge]["channels"] == [caller]
    standin.hangup_remote(caller)
    await standin.until(lambda: bool(controller.of("ended", caller)), "caller leg ended")
    await telephony.destroy_bridge(bridge)
    assert standin.bridges == {} and telephony.active_legs() == []


async def test_hold_with_a_file_loops_it_and_three_way_conference(standin, ari) -> None:
    telephony, controller = ari
    caller = await answered_inbound(standin, controller)
    agent = await answered_agent(standin, telephony, controller)
    bridge = await telephony.bridge([caller, agent])
    await telephony.hold(caller, music="sound:custom/hold-music")
    [playback] = [p for p in standin.playbacks if standin.playbacks[p]["target_uri"] == f"channel:{caller}"]
    assert caller not in standin.moh
    await telephony.resume(caller)
    assert playback not in standin.playbacks

    interpreter = await telephony.originate(
        "sip:interpreter@switchboard.example", caller_id="311", timeout_s=30
    )
    await standin.until(lambda: interpreter in standin.channels, "interpreter leg")
    standin.answer_remote(interpreter)
    await standin.until(lambda: bool(controller.of("answered", interpreter)), "interpreter answered")
    await telephony.add_to_bridge(bridge, interpreter)
    assert len(standin.bridges[bridge]["channels"]) == 3
    await telephony.remove_from_bridge(bridge, interpreter)
    assert interpreter not in standin.bridges[bridge]["channels"]
    for leg in (caller, agent, interpreter):
        await telephony.hangup(leg)
    await standin.until(lambda: telephony.active_legs() == [], "all legs ended")
    await telephony.destroy_bridge(bridge)


async def test_snoop_for_supervisor_monitoring(standin, ari) -> None:
    telephony, controller = ari
    caller = await answered_inbound(standin, controller)
    snoop = await telephony.snoop(caller, spy="both", whisper="out")
    [query] = requests_to(standin, "POST", f"/channels/{caller}/snoop")
    assert query == {
        "spy": "both",
        "whisper": "out",
        "app": "switchboard",
        "appArgs": "snoop",
        "snoopId": snoop,
    }
    await standin.until(
        lambda: any(e["type"] == "StasisStart" and e["channel"]["id"] == snoop for e in standin.sent_events),
        "the snoop channel in Stasis",
    )
    record = await telephony.record(snoop, "monitor/snoop-1")
    await telephony.stop_recording(record)
    assert controller.of("incoming", snoop) == []  # not mistaken for a caller
    assert sorted(telephony.active_legs()) == sorted([caller, snoop])
    await telephony.hangup(snoop)
    await standin.until(lambda: snoop not in telephony.active_legs(), "snoop gone")
    assert controller.of("ended", snoop) == []  # the controller never knew this leg
    standin.hangup_remote(caller)
    await standin.until(lambda: telephony.active_legs() == [], "all legs ended")


# ---- the events WebSocket ----------------------------------------------------------------------------------


async def test_events_websocket_reconnects_and_resyncs_missed_hangups(standin, ari) -> None:
    telephony, controller = ari
    caller = await answered_inbound(standin, controller)
    await standin.drop_connections()
    standin.hangup_remote(caller)  # no WebSocket: Asterisk drops the ChannelDestroyed
    assert standin.dropped_events >= 1
    await standin.until(lambda: standin.connected_apps == 1 and telephony.connected, "the reconnect")
    await standin.until(lambda: bool(controller.of("ended", caller)), "the missed hangup found by resync")
    assert controller.of("ended", caller) == [("ended", caller, HangupCause.NORMAL, None)]
    assert telephony.stats.connects >= 2 and telephony.stats.resynced_legs == 1

    second = await answered_inbound(standin, controller)  # calls still flow after the reconnect
    standin.hangup_remote(second)
    await standin.until(lambda: telephony.active_legs() == [], "all legs ended")


async def test_start_fails_plainly_when_asterisk_is_not_there() -> None:
    with socket_free_port() as port:
        telephony = AriTelephony(
            f"http://127.0.0.1:{port}/ari",
            "u",
            "p",
            connect_timeout_s=1.0,
            backoff_min_s=0.05,
            backoff_max_s=0.2,
        )
    with pytest.raises(ConnectionError, match="did not connect"):
        await telephony.start(Controller())


def socket_free_port() -> Any:
    import contextlib
    import socket

    @contextlib.contextmanager
    def port() -> Any:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        number = sock.getsockname()[1]
        sock.close()  # closed: nothing listens there
        yield number

    return port()


# ---- the stand-in really checks the contract ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params", "expected"),
    [
        ("DELETE", "/channels/{id}", {"reason": "hung_up"}, "not in allowed values"),
        ("POST", "/channels/{id}/answer", {"force": "true"}, "unknown query parameter 'force'"),
        ("PUT", "/channels/{id}/answer", {}, "method PUT not allowed"),
        ("POST", "/channels", {"endpoint": "PJSIP/x", "timeout": "soon"}, "'timeout'='soon' is not an int"),
        ("POST", "/channels", {"app": "switchboard"}, "required parameter 'endpoint' missing"),
        ("POST", "/channels/{id}/record", {"name": "x", "format": "wav", "beep": "yes"}, "not a boolean"),
        ("POST", "/channels/{id}/snoop", {"app": "switchboard", "spy": "sideways"}, "not in allowed values"),
        (
            "POST",
            "/channels/{id}/record",
            {"name": "x", "format": "wav", "maxDurationSeconds": "-5"},
            "outside range",
        ),
        ("POST", "/channels/{id}/answer?reason=normal&reason=busy", {}, "unknown query parameter 'reason'"),
        ("DELETE", "/channels/{id}?reason=normal&reason=busy", {}, "given twice"),
        ("POST", "/channels/{id}/holdit", {}, "no ARI resource"),
    ],
)
async def test_standin_rejects_what_the_contract_forbids(standin, method, path, params, expected) -> None:
    leg = standin.inbound_call("311")
    async with httpx.AsyncClient(auth=(standin.user, standin.password)) as client:
        response = await client.request(method, standin.url + path.format(id=leg), params=params or None)
    assert response.status_code == 400
    assert expected in response.json()["message"]
    assert len(standin.violations) == 1 and expected in standin.violations[0]
    assert leg in standin.channels  # a refused request changed nothing


async def test_standin_rejects_a_body_and_bad_credentials(standin) -> None:
    leg = standin.inbound_call("311")
    async with httpx.AsyncClient(auth=(standin.user, "wrong")) as client:
        assert (await client.post(f"{standin.url}/channels/{leg}/answer")).status_code == 401
    async with httpx.AsyncClient(auth=(standin.user, standin.password)) as client:
        response = await client.post(f"{standin.url}/channels/{leg}/answer", json={"now": True})
        assert response.status_code == 400 and "body is not allowed" in response.json()["message"]
        response = await client.post(f"{standin.url}/channels/{leg}/answer")
        assert response.status_code == 204  # the same request, valid, goes through
    assert len(standin.violations) == 1


def test_standin_validates_events_against_events_json() -> None:
    standin = AriStandIn()
    contract = standin.contract
    channel = standin._new_channel("PJSIP/x", "Up", "1", "311", "switchboard")
    base = {"application": "switchboard", "timestamp": "2026-08-01T10:00:00.000+0000"}
    assert (
        contract.check_event(
            {"type": "ChannelDtmfReceived", **base, "digit": "5", "duration_ms": 100, "channel": channel}
        )
        == []
    )
    problems = contract.check_event({"type": "ChannelDtmfReceived", **base, "digit": 5, "channel": channel})
    assert any("digit: expected a string" in p for p in problems)
    assert any("'duration_ms' missing" in p for p in problems)
    assert contract.check_event({"type": "ChannelExploded", **base}) == [
        "event: 'ChannelExploded' is not an Event subtype in events.json"
    ]
    bad_state = dict(channel, state="Answered")
    assert any(
        "'Answered' not in" in p
        for p in contract.check_event({"type": "ChannelStateChange", **base, "channel": bad_state})
    )
    assert any(
        "'colour' not declared" in p
        for p in contract.check_event({"type": "StasisEnd", **base, "channel": channel, "colour": "blue"})
    )
    standin.emit("ChannelDestroyed", "switchboard", channel=channel, cause="16", cause_txt="Normal")
    assert standin.violations and "cause: expected an integer" in standin.violations[0]


# ---- pure mappings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "endpoint"),
    [
        ("sip:agent-101@switchboard.example", "PJSIP/agent-101"),
        ("sip:desk.12@10.0.0.5:5060;transport=tcp", "PJSIP/desk.12"),
        ("tel:+18005550311", "PJSIP/+18005550311@trunk"),
        ("4165550100", "PJSIP/4165550100@trunk"),
        ("sip:4165550100@trunk", "PJSIP/4165550100@trunk"),
        ("PJSIP/agent-7", "PJSIP/agent-7"),
    ],
)
def test_pjsip_endpoint_convention(uri: str, endpoint: str) -> None:
    assert pjsip_endpoint(uri) == endpoint


@pytest.mark.parametrize(
    "uri",
    [
        "sip:a&PJSIP/b@x",
        "sip:@host",
        "tel:0900-CALL",
        "PJSIP/a&PJSIP/b",
        "mailto:x@y",
        "sip:a b@x",
        "sip:../etc@x",
    ],
)
def test_pjsip_endpoint_refuses_what_could_dial_elsewhere(uri: str) -> None:
    with pytest.raises(ValueError):
        pjsip_endpoint(uri)


@pytest.mark.parametrize(
    ("q850", "cause", "sip_code"),
    [
        (16, HangupCause.NORMAL, None),
        (17, HangupCause.BUSY, 486),
        (18, HangupCause.NO_ANSWER, 408),
        (19, HangupCause.NO_ANSWER, 480),
        (21, HangupCause.REJECTED, 603),
        (1, HangupCause.UNREACHABLE, 404),
        (34, HangupCause.UNREACHABLE, 503),
        (0, HangupCause.NORMAL, None),
        (99, HangupCause.REJECTED, None),
    ],
)
def test_q850_causes(q850: int, cause: HangupCause, sip_code: int | None) -> None:
    assert cause_from_q850(q850) == (cause, sip_code)


def test_media_and_recording_names() -> None:
    assert media_uri("sound:hello-world") == "sound:hello-world"
    assert media_uri("tone:ring;tonezone=us") == "tone:ring;tonezone=us"
    assert media_uri("prompts/welcome.wav") == "sound:prompts/welcome"
    assert recording_name("calls/2026/c1.wav") == ("calls-2026-c1", "wav")
    assert recording_name("/srv/rec/c2.gsm") == ("c2", "gsm")
    with pytest.raises(ValueError):
        recording_name("../../etc/passwd.wav")
