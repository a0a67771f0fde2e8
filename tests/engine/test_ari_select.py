"""`SWITCHBOARD_TELEPHONY=ari`: the engine's call controller drives Asterisk through the ARI adapter, against
the contract-checking stand-in (tests/engine/ari_standin.py): a call to 311 is queued with Asterisk's queue
announcement, rings the agent's PJSIP endpoint, is bridged on answer, held with music on hold and resumed
through the API's ACD steps, and ends when the caller hangs up. No request or event leaves the ARI contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ari_standin import AriStandIn

from acd.events import ContactEnded, ContactQueued
from engine.app import create_app
from engine.configfile import parse_text
from engine.settings import Settings
from engine.telephony.ari import AriTelephony
from engine.telephony.calls import ARI_COMFORT

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SITE = """skills: [general]
numbers:
  "311": general
queues:
  general:
    skills: {general: 1}
    offer_timeout_s: 10
    wrap_up_s: 0
agents:
  alice:
    skills: {general: 5}
stations:
  alice: sip:agent-101@switchboard.example
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def requests_to(standin: AriStandIn, method: str, path: str) -> list[dict[str, str]]:
    return [query for m, p, query in standin.requests if m == method and p == path]


async def test_the_controller_runs_on_ari_when_settings_say_so(standin: AriStandIn, tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    settings = Settings(config=tmp_path / "site.yaml", data_dir=tmp_path / "data", sip_enabled=True,
                        telephony="ari", ari_url=standin.url, ari_user=standin.user, ari_password=standin.password,
                        tick_ms=50)
    app = create_app(settings, parse_text(SITE, str(tmp_path / "site.yaml")))
    events: list[Any] = []
    async with app.router.lifespan_context(app):
        calls = app.state.calls
        assert calls is not None and isinstance(calls.telephony, AriTelephony)
        core = app.state.core
        core.listeners.append(lambda items: events.extend(i.event for i in items))
        standin.outcomes["PJSIP/agent-101"] = "answer"

        caller = standin.inbound_call("311", caller="9055550100")
        await standin.until(lambda: any(isinstance(e, ContactQueued) for e in events), "the call to be queued")
        (queued,) = [e for e in events if isinstance(e, ContactQueued)]
        cid = queued.contact
        await standin.until(lambda: bool(requests_to(standin, "POST", f"/channels/{caller}/answer")), "answer")
        await standin.until(lambda: any(q.get("media") == ARI_COMFORT for m, p, q in standin.requests
                                        if m == "POST" and p.startswith(f"/channels/{caller}/play")),
                            "comfort audio")

        await core.execute(lambda r, now: r.login("alice", now, ready=True))
        await standin.until(lambda: core.router.contacts[cid].state.value == "connected", "alice to answer")
        await standin.until(lambda: any(caller in b["channels"] and len(b["channels"]) == 2
                                        for b in standin.bridges.values()), "caller and alice bridged")
        (agent_leg,) = [leg for leg in calls.legs if leg != caller]
        assert standin.originated[agent_leg]["endpoint"] == "PJSIP/agent-101"

        await core.execute(lambda r, now: r.hold(cid, now))
        await standin.until(lambda: standin.moh.get(caller) == "default", "music on hold for the caller")
        assert all(caller not in b["channels"] for b in standin.bridges.values())
        await core.execute(lambda r, now: r.resume(cid, now))
        await standin.until(lambda: caller not in standin.moh and any(
            caller in b["channels"] and agent_leg in b["channels"] for b in standin.bridges.values()),
            "the caller back in the bridge")

        standin.hangup_remote(caller)
        await standin.until(lambda: any(isinstance(e, ContactEnded) for e in events), "the contact to end")
        await standin.until(lambda: calls.call_table() == {} and calls.calls == {}, "the call table to empty")
        await standin.until(lambda: calls.telephony.active_legs() == [], "every ARI leg gone")
    assert standin.violations == [], standin.violations
    assert standin.unsimulated == [], standin.unsimulated


async def test_a_back_end_with_a_leg_limit_refuses_calls_it_could_not_connect(standin: AriStandIn,
                                                                               tmp_path: Path) -> None:
    """Every admitted call needs an agent leg later: with room for 4 legs, a third caller is refused (503,
    "congestion") at once rather than queued to fail at the offer and count against an agent as a miss."""
    (tmp_path / "site.yaml").write_text(SITE)
    settings = Settings(config=tmp_path / "site.yaml", data_dir=tmp_path / "data", sip_enabled=True,
                        telephony="ari", ari_url=standin.url, ari_user=standin.user, ari_password=standin.password,
                        tick_ms=50)
    app = create_app(settings, parse_text(SITE, str(tmp_path / "site.yaml")))
    async with app.router.lifespan_context(app):
        calls = app.state.calls
        calls.telephony.leg_limit = 4  # as the embedded back end learns it from pjsua's PJ_ETOOMANY
        first, second = standin.inbound_call("311"), standin.inbound_call("311")
        await standin.until(lambda: len(calls.calls) == 2, "two calls queued")
        third = standin.inbound_call("311")
        await standin.until(lambda: third in standin.hangup_reasons, "the third caller refused")
        assert standin.hangup_reasons[third] == "congestion"
        assert len(calls.calls) == 2 and first not in standin.hangup_reasons and second not in standin.hangup_reasons
        standin.hangup_remote(first)
        await standin.until(lambda: len(calls.calls) == 1, "the first call gone")
        fourth = standin.inbound_call("311")  # room again
        await standin.until(lambda: len(calls.calls) == 2, "the fourth call queued")
        assert fourth not in standin.hangup_reasons
        standin.hangup_remote(second)
        standin.hangup_remote(fourth)
        await standin.until(lambda: calls.calls == {} and calls.call_table() == {}, "the call table to empty")
    assert standin.violations == [], standin.violations
