"""Cases filed and worked from a contact through the site's CRM connector (engine/api/desk_cases.py).

On a real app (FastAPI TestClient, the demo site): with the builtin CRM the case lands in Switchboard's
store (its catalogue checks still apply, each bad field named); with the webhook CRM the real connector
(behind its guard) posts signed HTTP to the CRM stand-in, which records the create and answers the
reference. Bad input, another agent's contact, a CRM that refuses and a CRM that is down are refused
with a problem naming why, and store nothing.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from crm_service import SECRET, CrmService, running_crm
from fastapi import FastAPI
from fastapi.testclient import TestClient
from live_server import demo_app

from cti.cases import CaseQuery
from cti.connectors import make_connector
from engine.settings import Settings


class Desk:
    def __init__(self, app: FastAPI, client: TestClient):
        self.app, self.client = app, client
        self.tokens = {u: self._login(u) for u in ("alice", "bashir", "sam")}
        self.serial = 0

    def _login(self, user: str) -> str:
        r = self.client.post("/api/v1/auth/login", json={"username": user, "password": f"{user}-demo"})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def call(self, user: str, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, f"/api/v1{path}", headers={"Authorization": f"Bearer {self.tokens[user]}"},
                                   **kw)

    def ok(self, user: str, method: str, path: str, **kw: Any) -> Any:
        r = self.call(user, method, path, **kw)
        assert r.is_success, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def connected(self, agent: str, caller_id: str = "9055550123") -> str:
        """A voice contact offered to `agent` (who goes ready) and accepted."""
        self.ok(agent, "POST", f"/agents/{agent}/login", json={"ready": True})
        self.serial += 1
        cid = f"dc-{self.serial}"
        self.ok("sam", "POST", "/contacts", json={"id": cid, "queue": "general", "channel": "voice",
                                                  "preferred_agent": agent,
                                                  "attributes": {"caller_id": caller_id}})
        assert self.ok("sam", "GET", f"/contacts/{cid}")["agent"] == agent
        self.ok(agent, "POST", f"/contacts/{cid}/accept")
        return cid

    def finish(self, agent: str, cid: str) -> None:
        self.ok(agent, "POST", f"/contacts/{cid}/complete", json={"code": "resolved"})
        self.ok(agent, "POST", f"/agents/{agent}/logout")

    def builtin_cases_of(self, cid: str) -> list[dict[str, Any]]:
        store = self.app.state.cases
        found, _ = store.search(CaseQuery(), limit=500, offset=0)
        return [{"reference": c.reference} for c in found if c.contact_id == cid]




@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    app = demo_app(tmp_path_factory.mktemp("desk-cases"), sip_enabled=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Desk(app, client)


@contextlib.contextmanager
def webhook_crm(desk: Desk, url: str) -> Iterator[None]:
    """The running bridge on the webhook CRM (the real connector and guard, built from settings)."""
    bridge = desk.app.state.cti
    before = bridge.connector
    bridge.connector = make_connector(Settings(crm="webhook", webhook_url=url, webhook_secret=SECRET,
                                               crm_timeout_s=2.0), None)
    try:
        yield
    finally:
        bridge.connector = before


@pytest.fixture
def crm(desk: Desk) -> Iterator[CrmService]:
    with running_crm() as service, webhook_crm(desk, service.url):
        yield service


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["type"] == f"/problems/{code}", body
    return body


# --- builtin ---------------------------------------------------------------------------------------------
def test_builtin_case_from_a_contact_lands_in_the_store_with_the_contact(desk: Desk) -> None:
    cid = desk.connected("alice")
    made = desk.call("alice", "POST", f"/contacts/{cid}/case", json={
        "service_code": "pothole", "description": "Deep hole, curb lane", "location": "12 Main St",
        "first_name": "Ada", "last_name": "Byron", "attributes": {"size": "large"}})
    assert made.status_code == 201, made.text
    case = made.json()
    assert case["crm"] == "builtin" and case["reference"].startswith("SR-") and case["status"] == "acknowledged"
    stored = desk.ok("sam", "GET", f"/cases/{case['reference']}")
    assert stored["contact_id"] == cid and stored["channel"] == "voice" and stored["filed_by"] == "alice"
    assert stored["attributes"] == {"size": "large"} and stored["location"]["address"] == "12 Main St"
    # nobody matched and no phone typed: the case is for the caller on the line
    assert stored["resident"]["phones"] == ["+19055550123"] and stored["resident"]["name"] == "Ada Byron"

    # a note and a status move from the same contact, by the connector's rules
    moved = desk.ok("alice", "POST", f"/contacts/{cid}/cases/{case['reference']}",
                    json={"note": "Caller adds: a cyclist fell", "status": "in_progress"})
    assert moved["status"] == "in_progress" and moved["reference"] == case["reference"]
    detail = desk.ok("sam", "GET", f"/cases/{case['reference']}")
    assert [(n["author"], n["body"]) for n in detail["notes"]] == [("alice", "Caller adds: a cyclist fell")]

    # the builtin store's catalogue checks still apply, each bad field named; nothing stored
    bad = problem(desk.call("alice", "POST", f"/contacts/{cid}/case", json={
        "service_code": "streetlight-out", "description": "dark", "location": "1 Main St",
        "attributes": {"problem": "exploded"}}), 422, "crm-rejected")
    assert any(e["field"].startswith("body.attributes") for e in bad["errors"]), bad
    # closing needs a supervisor's approval in the builtin store: refused, status unchanged
    problem(desk.call("alice", "POST", f"/contacts/{cid}/cases/{case['reference']}",
                      json={"status": "closed", "note": "fixed"}), 422, "crm-rejected")
    assert desk.ok("sam", "GET", f"/cases/{case['reference']}")["status"] == "in_progress"
    assert len(desk.ok("sam", "GET", f"/cases/{case['reference']}")["notes"]) == 1
    assert len(desk.builtin_cases_of(cid)) == 1
    desk.finish("alice", cid)

    # after the contact is over, its agent may still add to the case from it (the desk's history)
    desk.ok("alice", "POST", f"/contacts/{cid}/cases/{case['reference']}", json={"note": "called back"})


def test_bad_input_and_other_agents_contacts_are_refused_and_store_nothing(desk: Desk) -> None:
    cid = desk.connected("alice")
    body = problem(desk.call("alice", "POST", f"/contacts/{cid}/case", json={}), 422, "validation-error")
    assert any(e["field"] == "body.service_code" for e in body["errors"]), body
    body = problem(desk.call("alice", "POST", f"/contacts/{cid}/case",
                             json={"service_code": "unicorn-sighting", "description": "x"}), 422, "unknown-service")
    assert body["errors"] == [{"field": "body.service_code", "message": "not in the service catalogue"}]
    body = problem(desk.call("alice", "POST", f"/contacts/{cid}/case",
                             json={"service_code": "pothole", "resident_id": 4}), 422, "validation-error")
    assert any("resident_id" in e["field"] for e in body["errors"]), body
    problem(desk.call("alice", "POST", f"/contacts/{cid}/case",
                      json={"service_code": "pothole", "lat": 91.0}), 422, "validation-error")
    problem(desk.call("alice", "POST", "/contacts/no-such-contact/case", json={"service_code": "pothole"}),
            404, "unknown-contact")
    # an update needs a note or a status
    body = problem(desk.call("alice", "POST", f"/contacts/{cid}/cases/SR-2026-000001", json={}),
                   422, "validation-error")
    assert "note, a status" in str(body["errors"]), body
    problem(desk.call("alice", "POST", f"/contacts/{cid}/cases/SR-2026-000001", json={"note": "   "}),
            422, "validation-error")
    # a case that is not this contact's (here: none at all) is refused before the CRM is asked to change it;
    # a supervisor's update reaches the CRM, which says it has no such case
    problem(desk.call("alice", "POST", f"/contacts/{cid}/cases/SR-2099-999999", json={"note": "hello"}),
            403, "not-this-callers-case")
    problem(desk.call("sam", "POST", f"/contacts/{cid}/cases/SR-2099-999999", json={"note": "hello"}),
            422, "crm-rejected")

    # bashir never had this contact: 403 on both routes; a supervisor may
    problem(desk.call("bashir", "POST", f"/contacts/{cid}/case",
                      json={"service_code": "property-tax", "description": "bill"}), 403, "forbidden")
    problem(desk.call("bashir", "POST", f"/contacts/{cid}/cases/SR-2026-000001", json={"note": "x"}),
            403, "forbidden")
    assert desk.builtin_cases_of(cid) == []
    by_sup = desk.call("sam", "POST", f"/contacts/{cid}/case",
                       json={"service_code": "property-tax", "description": "When is the final bill due?"})
    assert by_sup.status_code == 201, by_sup.text
    assert len(desk.builtin_cases_of(cid)) == 1
    desk.finish("alice", cid)


def test_an_agent_works_only_this_callers_cases_from_a_contact(desk: Desk) -> None:
    """The caller's open case (as the pop shows it) and the contact's own filings: yes. A neighbour's case,
    by guessing its reference: 403, nothing written. A supervisor may work any case."""
    other = desk.connected("alice", caller_id="9055550999")
    theirs = desk.ok("alice", "POST", f"/contacts/{other}/case", json={
        "service_code": "pothole", "description": "Neighbour's pothole", "location": "3 Oak St",
        "first_name": "Nina", "last_name": "Neighbour"})["reference"]
    desk.finish("alice", other)

    cid = desk.connected("alice")  # the usual caller, +19055550123
    mine = desk.ok("alice", "POST", f"/contacts/{cid}/case", json={
        "service_code": "pothole", "description": "My pothole", "location": "12 Main St",
        "first_name": "Ada", "last_name": "Byron"})["reference"]
    desk.finish("alice", cid)
    cid2 = desk.connected("alice")  # the same caller again: their open case is on the pop, so it may be worked
    assert mine in [k["reference"] for k in desk.ok("alice", "GET", f"/contacts/{cid2}/pop")["cases"]]
    desk.ok("alice", "POST", f"/contacts/{cid2}/cases/{mine}", json={"note": "Caller says it got deeper"})

    body = problem(desk.call("alice", "POST", f"/contacts/{cid2}/cases/{theirs}",
                             json={"note": "sneaky", "status": "in_progress"}), 403, "not-this-callers-case")
    assert theirs in body["detail"]
    detail = desk.ok("sam", "GET", f"/cases/{theirs}")
    assert detail["notes"] == [] and detail["status"] == "acknowledged"
    # from the contact it was filed from, after it ended, its agent may still add to it
    desk.ok("alice", "POST", f"/contacts/{other}/cases/{theirs}", json={"note": "called Nina back"})
    desk.ok("sam", "POST", f"/contacts/{cid2}/cases/{theirs}", json={"note": "supervisor: merged"})
    assert [n["author"] for n in desk.ok("sam", "GET", f"/cases/{theirs}")["notes"]] == ["alice", "sam"]
    desk.finish("alice", cid2)


# --- an external CRM (webhook) ------------------------------------------------------------------------------
def test_webhook_crm_gets_the_case_and_its_reference_comes_back(desk: Desk, crm: CrmService) -> None:
    cid = desk.connected("alice")
    assert desk.ok("alice", "GET", "/desk/config")["crm"] == "webhook"
    made = desk.call("alice", "POST", f"/contacts/{cid}/case", json={
        "service_code": "tree-down", "description": "Big maple across the sidewalk", "person_id": "contact-7",
        "location": "14 Elm St", "attributes": {"blocking": "sidewalk"}})
    assert made.status_code == 201, made.text
    case = made.json()
    assert case["crm"] == "webhook" and case["reference"] == "CAS-02001" and case["id"] == "inc-new-1"
    [filed] = crm.created
    assert filed["contact_id"] == cid and filed["channel"] == "voice" and filed["filed_by"] == "alice"
    assert filed["person_id"] == "contact-7" and filed["service_code"] == "tree-down"
    assert filed["location"] == "14 Elm St" and filed["attributes"] == {"blocking": "sidewalk"}
    assert filed["phone"] is None  # a matched person: nothing invented
    assert desk.builtin_cases_of(cid) == [], "the case went to the CRM, not the builtin store"
    # the next pop asks the CRM afresh and shows it
    pop = desk.ok("alice", "GET", f"/contacts/{cid}/pop")
    assert "CAS-02001" in [k["reference"] for k in pop["cases"]]

    updated = desk.ok("alice", "POST", f"/contacts/{cid}/cases/inc-1", json={"note": "Still blocking the road"})
    assert updated["reference"] == "CAS-01042"
    assert crm.updates == [("inc-1", {"status": None, "note": "Still blocking the road", "filed_by": "alice"})]

    # the CRM says no: 422 naming what it refused
    crm.refused_services.add("noise")
    body = problem(desk.call("alice", "POST", f"/contacts/{cid}/case", json={
        "service_code": "noise", "description": "Party", "person_id": "contact-7"}), 422, "crm-rejected")
    assert "no case type for service noise" in body["detail"]
    problem(desk.call("alice", "POST", f"/contacts/{cid}/cases/inc-404", json={"note": "x"}),
            403, "not-this-callers-case")  # not among the caller's cases in the CRM
    body = problem(desk.call("sam", "POST", f"/contacts/{cid}/cases/inc-404", json={"note": "x"}),
                   422, "crm-rejected")
    assert "no case inc-404" in body["detail"]
    assert len(crm.created) == 1 and len(crm.updates) == 1
    assert crm.bad_signatures == 0
    desk.finish("alice", cid)


def test_a_crm_that_is_down_answers_503_and_nothing_is_stored(desk: Desk, crm: CrmService) -> None:
    cid = desk.connected("alice")
    crm.mode = "500"
    body = problem(desk.call("alice", "POST", f"/contacts/{cid}/case", json={
        "service_code": "pothole", "description": "Hole", "person_id": "contact-7"}), 503, "crm-unavailable")
    assert body["detail"].startswith("CRM unavailable, try again")
    problem(desk.call("alice", "POST", f"/contacts/{cid}/cases/inc-1", json={"note": "x"}), 503, "crm-unavailable")
    assert crm.created == [] and crm.updates == [] and desk.builtin_cases_of(cid) == []

    with socket.socket() as s:  # nobody listens there
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with webhook_crm(desk, f"http://127.0.0.1:{dead}/crm"):
        problem(desk.call("alice", "POST", f"/contacts/{cid}/case", json={
            "service_code": "pothole", "description": "Hole"}), 503, "crm-unavailable")
    assert desk.builtin_cases_of(cid) == []
    desk.finish("alice", cid)
