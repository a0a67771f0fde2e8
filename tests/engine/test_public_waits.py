"""The current wait for the city's web site: GET /api/v1/public/waits (no sign-in), its site-file list of
public lines, and the opening hours it reports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_server import REPO, demo_app

from acd.model import Channel
from cti.business_days import BusinessCalendar
from engine.configfile import ConfigFileError, parse_text
from engine.hours import OpeningHours

OSHAWA_HOURS = {day: [("08:00", "18:00")] for day in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": [("09:00", "13:00")]}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_opening_hours_in_the_sites_zone_closed_on_statutory_holidays() -> None:
    hours = OpeningHours(OSHAWA_HOURS, BusinessCalendar("CA-ON", tz="America/Toronto"))
    # Tuesday 24 November 2026; Toronto is UTC-5 in winter
    assert not hours.is_open(utc(2026, 11, 24, 12, 59))  # 07:59 local
    assert hours.is_open(utc(2026, 11, 24, 13, 0))  # 08:00 local
    assert hours.is_open(utc(2026, 11, 24, 22, 59))  # 17:59 local
    assert not hours.is_open(utc(2026, 11, 24, 23, 0))  # 18:00 local: closed (the range ends there)
    assert hours.is_open(utc(2026, 11, 28, 17, 0))  # Saturday 12:00
    assert not hours.is_open(utc(2026, 11, 28, 18, 0))  # Saturday 13:00
    assert not hours.is_open(utc(2026, 11, 29, 17, 0))  # Sunday
    assert not hours.is_open(utc(2026, 12, 25, 17, 0))  # Christmas Day, a Friday
    assert not hours.is_open(utc(2026, 7, 1, 16, 0))  # Canada Day, a Wednesday (summer: UTC-4)
    assert hours.is_open(utc(2026, 7, 2, 16, 0))
    always = OpeningHours({}, BusinessCalendar("CA-ON", tz="America/Toronto"))
    assert always.is_open(utc(2026, 12, 25, 3, 0))  # no hours in the site file: open at all hours


def test_a_public_line_must_be_a_queue_of_the_site(tmp_path: Path) -> None:
    text = (REPO / "config" / "switchboard.yaml").read_text().replace(
        "public_waits: [general, bylaw,", "public_waits: [general, licences,")
    with pytest.raises(ConfigFileError) as refused:
        parse_text(text, str(tmp_path / "site.yaml"))
    [problem] = refused.value.problems
    assert (problem.field, problem.message) == ("public_waits[1]", "unknown queue 'licences'")
    assert text.splitlines()[problem.line - 1].startswith("public_waits:")


class Site:
    def __init__(self, client: TestClient):
        self.client = client
        r = client.post("/api/v1/auth/login", json={"username": "sam", "password": "sam-demo"})
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.client.request(method, path, headers=self.headers, **kw)
        assert r.is_success, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def waits(self, **params: str) -> dict[str, Any]:
        r = self.client.get("/api/v1/public/waits", params=params)  # no token: public
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["cache-control"] == "public, max-age=15"
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with TestClient(demo_app(tmp_path)) as client:
        yield Site(client)


def test_the_web_site_sees_each_public_lines_wait_and_nothing_else(site: Site) -> None:
    body = site.waits()
    assert body["as_of"].endswith("Z") and body["channel"] == "voice" and isinstance(body["open"], bool)
    lines = {line["queue"]: line for line in body["lines"]}
    assert list(lines) == ["general", "bylaw", "roads", "waste", "taxes", "parking"]  # the site file's order
    assert lines["taxes"] == {"queue": "taxes", "name": "Property taxes", "in_line": 0, "agents_serving": 0,
                              "expected_wait_s": None}  # nobody signed in: no estimate rather than a guess

    # alice (general, by-law, parking) signs in ready: nobody in line, so a caller is answered at once
    site.ok("POST", "/api/v1/agents/alice/login", json={"ready": True})
    lines = {line["queue"]: line for line in site.waits()["lines"]}
    assert (lines["general"]["agents_serving"], lines["general"]["expected_wait_s"]) == (1, 0)
    assert lines["roads"]["expected_wait_s"] is None

    # she takes a break; three calls queue for general: a caller joining now would be fourth in line
    site.ok("POST", "/api/v1/agents/alice/state", json={"state": "not_ready", "reason": "break"})
    for _ in range(3):
        site.ok("POST", "/api/v1/contacts", json={"queue": "general", "channel": "voice"})
    router = site.client.app.state.core.router  # type: ignore[attr-defined]
    general = {line["queue"]: line for line in site.waits()["lines"]}["general"]
    assert general["in_line"] == 3
    assert general["expected_wait_s"] == round(router.expected_wait("general", 4)) > 0
    # a chat joining by-law: alice is away, so not offered at once, but she serves it: an estimate
    bylaw = {line["queue"]: line for line in site.waits(channel="chat")["lines"]}["bylaw"]
    assert bylaw["expected_wait_s"] == round(router.expected_wait("bylaw", 1)) > 0


def test_an_unknown_channel_is_a_problem_naming_it(site: Site) -> None:
    r = site.client.get("/api/v1/public/waits", params={"channel": "fax"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["query.channel"]


def test_the_figures_are_worked_out_again_only_when_something_changed(site: Site) -> None:
    """A public feed may be asked for in a flood: asked again with nothing changed, the engine hands back what
    it worked out before; after any command (a journaled event), the new figures."""
    state = site.client.app.state  # type: ignore[attr-defined]
    first = site.waits()["lines"]
    router, seq, site_file, lines = state.public_lines[Channel.VOICE]
    assert lines == first
    state.public_lines[Channel.VOICE] = (router, seq, site_file, [{"queue": "held"}])  # mark what is held
    assert site.waits()["lines"] == [{"queue": "held"}]  # nothing changed: handed back as it was
    site.ok("POST", "/api/v1/contacts", json={"queue": "general", "channel": "voice"})
    general = {line["queue"]: line for line in site.waits()["lines"]}["general"]
    assert general["in_line"] == 1  # the command moved the journal on: worked out again
    assert site.waits(channel="chat")["channel"] == "chat" and set(state.public_lines) == {
        Channel.VOICE, Channel.CHAT}  # each channel its own
