"""The Dynamics 365 connector against the schema-checking stand-in (tests/cti/dynamics_standin.py).

A good path ends with the stand-in's `violations` empty: no request the Web API or the token endpoint would
refuse. The stand-in itself is tested first, so a lax stand-in cannot make the connector look right.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from dynamics_standin import API, DynamicsStandIn

from cti.connectors.base import CaseInput, CaseUpdate, CrmRejected, CrmUnavailable
from cti.connectors.dynamics import DynamicsConnector, batch_statuses, changeset_body, phone_forms, quote
from cti.connectors.guard import BreakerState, GuardedConnector

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0", "Accept": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def standin() -> AsyncIterator[DynamicsStandIn]:
    server = DynamicsStandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connector(standin: DynamicsStandIn, **kw: Any) -> DynamicsConnector:
    args: dict[str, Any] = {"org_url": standin.org_url, "tenant": standin.tenant, "client_id": standin.client_id,
                            "client_secret": standin.client_secret, "token_url": standin.token_url}
    args.update(kw)
    return DynamicsConnector(**args)


@pytest.fixture
async def crm(standin: DynamicsStandIn) -> AsyncIterator[DynamicsConnector]:
    c = connector(standin)
    try:
        yield c
    finally:
        await c.close()


def last_query(standin: DynamicsStandIn) -> dict[str, str]:
    _, target = standin.requests[-1]
    return {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}


# ---- the stand-in refuses what Dataverse refuses ------------------------------------------------------------

async def test_standin_enforces_the_published_contract(standin: DynamicsStandIn) -> None:
    async with httpx.AsyncClient(base_url=standin.url + API) as http:
        assert (await http.get("/contacts", headers=HEADERS)).status_code == 401  # no token
        form = {"grant_type": "client_credentials", "client_id": standin.client_id,
                "client_secret": standin.client_secret, "scope": f"{standin.org_url}/.default"}
        token = (await http.post(standin.token_url, data=form)).json()
        assert token["token_type"] == "Bearer" and token["expires_in"] > 0
        auth = {**HEADERS, "Authorization": f"Bearer {token['access_token']}"}

        async def refused(path: str, status: int, code: str, words: str, **kw: Any) -> None:
            reply = await http.request(kw.pop("method", "GET"), path, headers=kw.pop("headers", auth), **kw)
            assert reply.status_code == status, reply.text
            error = reply.json()["error"]
            assert error["code"] == code and words in error["message"], error

        await refused("/Contacts", 404, "0x8006088a", "Resource not found for the segment 'Contacts'")
        await refused("/contacts", 400, "0x0", "Could not find a property named 'Telephone1' on type "
                      "'Microsoft.Dynamics.CRM.contact'", params={"$select": "Telephone1"})
        await refused("/contacts", 400, "0x0", "'phone'", params={"$filter": "phone eq '1'"})
        await refused("/contacts", 400, "0x80060888", "'$search' is not supported", params={"$search": "x"})
        await refused("/contacts", 400, "0x80060888", "Syntax error", params={"$filter": "lastname eq 'O'Brien'"})
        await refused("/contacts", 400, "0x80060888", "not a comparison operator",
                      params={"$filter": "lastname like 'x'"})
        await refused("/incidents", 400, "0x80060888", "incompatible types",
                      params={"$filter": "_customerid_value eq '6f1c0a3e-0000-4000-8000-000000000001'"})
        await refused("/incidents", 400, "0x80060888", "incompatible types", params={"$filter": "statecode eq '0'"})
        await refused("/incidents", 400, "0x0", "'customerid'", params={"$select": "customerid"})  # lookups: _x_value
        await refused("/incidents", 400, "0x80060888", "$top", params={"$top": "-1"})
        await refused("/contacts", 400, "0x80060888", "odata-version", headers={**auth, "OData-Version": "3.0"})
        await refused("/incidents", 400, "0x80060888", "'customerid' does not exist", method="POST",
                      json={"title": "x", "customerid": "6f1c0a3e-0000-4000-8000-000000000001"})
        await refused("/incidents", 400, "0x80040203", "'statecode' cannot be set on create", method="POST",
                      json={"title": "x", "statecode": 1})
        await refused("/incidents", 404, "0x80040217", "contact With Id", method="POST",
                      json={"title": "x", "customerid_contact@odata.bind": "/contacts(6f1c0a3e-0000-4000-8000-0000"
                                                                           "00000001)"})
        ok = await http.get("/contacts", headers=auth, params={
            "$select": "contactid,fullname", "$filter": "(contains(lastname,'o''b') or telephone1 eq null) and "
                                                        "statecode eq 0", "$orderby": "createdon desc", "$top": "5"})
        assert ok.status_code == 200 and ok.json()["value"] == []
    assert len(standin.violations) == 14  # each refusal above, recorded


def test_phone_forms_and_quoting() -> None:
    forms = phone_forms("(905) 555-0101")
    assert {"+19055550101", "9055550101", "905-555-0101", "(905) 555-0101", "905.555.0101",
            "1-905-555-0101"} <= set(forms)
    assert phone_forms("+44 20 7946 0000") == ["+442079460000", "442079460000"]
    assert phone_forms("anonymous") == [] and phone_forms("12") == []
    assert quote("o'brien@example.ca") == "'o''brien@example.ca'"


# ---- lookups ------------------------------------------------------------------------------------------------

async def test_lookup_finds_the_number_however_it_was_typed(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    ann = standin.add_contact(firstname="Ann", lastname="Lee", telephone1="(905) 555-0101",
                              emailaddress1="ann@example.ca", address1_line1="12 Elm St", address1_city="Lakeview")
    bob = standin.add_contact(firstname="Bob", lastname="Roy", mobilephone="905.555.0102")
    cy = standin.add_contact(firstname="Cy", lastname="Day", telephone2="+19055550103")
    standin.add_contact(firstname="Old", lastname="Record", telephone1="905-555-0101", statecode=1, statuscode=2)

    found = await crm.lookup(phone="+19055550101")
    assert [p.id for p in found] == [ann]
    p = found[0]
    assert (p.name, p.phones, p.emails) == ("Ann Lee", ("(905) 555-0101",), ("ann@example.ca",))
    assert p.address is not None and "12 Elm St" in p.address
    assert p.url is not None and ann in p.url and "etn=contact" in p.url
    assert "telephone1 eq '(905) 555-0101'" in last_query(standin)["$filter"]
    assert [x.id for x in await crm.lookup(phone="9055550102")] == [bob]
    assert [x.id for x in await crm.lookup(phone="1-905-555-0103")] == [cy]
    assert await crm.lookup(phone="+19055550199") == []
    assert standin.violations == []


async def test_lookup_by_email_escapes_quotes(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    cid = standin.add_contact(firstname="Liam", lastname="O'Brien", emailaddress1="liam.o'brien@example.ca")
    found = await crm.lookup(email="Liam.O'Brien@Example.ca")
    assert [p.id for p in found] == [cid] and found[0].name == "Liam O'Brien"
    assert "emailaddress1 eq 'liam.o''brien@example.ca'" in last_query(standin)["$filter"]
    assert standin.violations == []


async def test_lookup_of_nothing_usable_asks_nothing(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    assert await crm.lookup(phone="anonymous") == []
    assert await crm.lookup(phone=None, email="not-an-address") == []
    assert await crm.lookup() == []
    assert standin.requests == [] and standin.token_requests == 0


# ---- cases --------------------------------------------------------------------------------------------------

async def test_open_cases_newest_first_active_only(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    ann = standin.add_contact(firstname="Ann", lastname="Lee")
    other = standin.add_contact(firstname="Zed", lastname="Oak")
    old = standin.add_incident(ann, "Pothole on Elm", createdon="2026-10-01T12:00:00Z")
    new = standin.add_incident(ann, "Missed garbage", createdon="2026-11-20T09:30:00Z", statuscode=2)
    standin.add_incident(ann, "Noise (resolved)", createdon="2026-11-21T09:30:00Z", statecode=1, statuscode=5)
    standin.add_incident(other, "Not Ann's", createdon="2026-11-22T09:30:00Z")

    cases = await crm.open_cases(ann)
    assert [c.id for c in cases] == [new, old]
    assert cases[0].title == "Missed garbage" and cases[0].status == "open"
    assert cases[0].reference.startswith("CAS-") and cases[0].opened_at is not None
    assert cases[0].opened_at.isoformat() == "2026-11-20T09:30:00+00:00"
    q = last_query(standin)
    assert q["$orderby"] == "createdon desc" and f"_customerid_value eq {ann}" in q["$filter"]
    assert [c.id for c in await crm.open_cases(ann, limit=1)] == [new]
    assert standin.violations == []


async def test_bad_ids_are_refused_before_asking(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    with pytest.raises(CrmRejected, match="not a Dynamics contact id"):
        await crm.open_cases("42")
    with pytest.raises(CrmRejected, match="not a Dynamics case id"):
        await crm.update_case("SR-2026-000001", CaseUpdate(note="x"))
    with pytest.raises(CrmRejected, match="status 'escalated'"):
        await crm.update_case("6f1c0a3e-0000-4000-8000-000000000001", CaseUpdate(status="escalated"))
    with pytest.raises(CrmRejected, match="description"):
        await crm.create_case(CaseInput(service_code="pothole", description="   "))
    with pytest.raises(CrmRejected, match="2000 characters"):
        await crm.create_case(CaseInput(service_code="pothole", description="x" * 2001,
                                        person_id="6f1c0a3e-0000-4000-8000-000000000001"))
    with pytest.raises(CrmRejected, match="needs a customer"):
        await crm.create_case(CaseInput(service_code="pothole", description="hole"))
    assert standin.requests == []


async def test_create_case_for_a_known_contact(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    ann = standin.add_contact(firstname="Ann", lastname="Lee", telephone1="905-555-0101")
    case = await crm.create_case(CaseInput(
        service_code="pothole", description="Deep hole by the curb\nnear the school", person_id=ann,
        location="12 Elm St, Lakeview", lat=43.9, long=-78.85, attributes={"size": "large"}, contact_id="c-77",
        channel="voice", filed_by="alice"))
    stored = standin.records["incidents"][case.id]
    assert stored["_customerid_value"] == ann and stored["caseorigincode"] == 1
    assert stored["title"] == "pothole: Deep hole by the curb"
    assert "Location: 12 Elm St, Lakeview" in stored["description"] and "size: large" in stored["description"]
    assert case.reference == stored["ticketnumber"] and case.status == "open" and case.title == stored["title"]
    assert [c.id for c in await crm.open_cases(ann)] == [case.id]
    assert standin.violations == []


async def test_create_case_finds_or_creates_the_contact(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    ann = standin.add_contact(firstname="Ann", lastname="Lee", mobilephone="(905) 555-0101")
    first = await crm.create_case(CaseInput(service_code="noise", description="Party", phone="905-555-0101",
                                            channel="chat"))
    assert standin.records["incidents"][first.id]["_customerid_value"] == ann
    assert standin.records["incidents"][first.id]["caseorigincode"] == 3
    assert len(standin.records["contacts"]) == 1

    second = await crm.create_case(CaseInput(service_code="noise", description="Barking dog", phone="9055550177",
                                             first_name="New", last_name="Caller", email="new@example.ca"))
    created = standin.records["incidents"][second.id]["_customerid_value"]
    contact = standin.records["contacts"][created]
    assert (contact["fullname"], contact["telephone1"], contact["emailaddress1"]) == (
        "New Caller", "+19055550177", "new@example.ca")
    assert [p.id for p in await crm.lookup(phone="+19055550177")] == [created]
    assert standin.violations == []


async def test_update_notes_status_and_close(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    ann = standin.add_contact(firstname="Ann", lastname="Lee")
    iid = standin.add_incident(ann, "Pothole on Elm")

    held = await crm.update_case(iid, CaseUpdate(status="On hold", note="Crew booked for Tuesday", filed_by="alice"))
    assert held.status == "open" and standin.records["incidents"][iid]["statuscode"] == 2
    notes = list(standin.records["annotations"].values())
    assert [(n["_objectid_value"], n["notetext"], n["subject"]) for n in notes] == [
        (iid, "Crew booked for Tuesday", "Note from alice")]

    closed = await crm.update_case(iid, CaseUpdate(status="closed", note="Patched", filed_by="alice"))
    assert closed.status == "closed"
    assert (standin.records["incidents"][iid]["statecode"], standin.records["incidents"][iid]["statuscode"]) == (1, 5)
    resolution = next(iter(standin.records["incidentresolutions"].values()))
    assert resolution["_incidentid_value"] == iid and resolution["subject"] == "Closed by alice"
    assert await crm.open_cases(ann) == []
    assert standin.violations == []

    with pytest.raises(CrmRejected, match="already been resolved"):  # Dynamics keeps resolved cases read-only
        await crm.update_case(iid, CaseUpdate(status="in_progress"))


async def test_update_of_a_missing_case_is_refused_not_created(standin: DynamicsStandIn,
                                                               crm: DynamicsConnector) -> None:
    missing = "6f1c0a3e-0000-4000-8000-000000000009"
    with pytest.raises(CrmRejected, match="Does Not Exist"):
        await crm.update_case(missing, CaseUpdate(status="on_hold"))
    assert standin.records["incidents"] == {}
    assert not any("upsert" in v for v in standin.violations)



def batches(standin: DynamicsStandIn) -> list[str]:
    """The Web API writes since the start, `$batch` for a change set."""
    return [f"{m} {t.split('?')[0].rsplit('/', 1)[-1]}" for m, t in standin.requests if m != "GET"]


async def test_a_note_with_a_status_is_one_change_set(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    ann = standin.add_contact(firstname="Ann", lastname="Lee")
    iid = standin.add_incident(ann, "Pothole on Elm")
    await crm.update_case(iid, CaseUpdate(status="on_hold", note="Crew booked", filed_by="alice"))
    await crm.update_case(iid, CaseUpdate(note="Called back"))  # a lone write needs no batch
    await crm.update_case(iid, CaseUpdate(status="closed", note="Patched", filed_by="alice"))
    assert batches(standin) == ["POST $batch", "POST annotations", "POST $batch"]
    assert sorted(n["notetext"] for n in standin.records["annotations"].values()) == [
        "Called back", "Crew booked", "Patched"]
    assert standin.records["incidents"][iid]["statecode"] == 1
    assert standin.violations == []


async def test_a_refused_status_change_leaves_no_note_behind(standin: DynamicsStandIn,
                                                             crm: DynamicsConnector) -> None:
    ann = standin.add_contact(firstname="Ann", lastname="Lee")
    resolved = standin.add_incident(ann, "Streetlight out", statecode=1, statuscode=5)
    for status in ("on_hold", "closed"):  # PATCH and CloseIncident, each refused after the note was written
        with pytest.raises(CrmRejected, match="already been resolved"):
            await crm.update_case(resolved, CaseUpdate(status=status, note="Crew sent", filed_by="alice"))
    assert standin.records["annotations"] == {} and standin.records["incidentresolutions"] == {}
    assert standin.records["incidents"][resolved]["statuscode"] == 5

    missing = "6f1c0a3e-0000-4000-8000-000000000009"  # the note's own bind fails first: nothing either
    with pytest.raises(CrmRejected, match="Does Not Exist"):
        await crm.update_case(missing, CaseUpdate(status="on_hold", note="x"))
    assert standin.records["annotations"] == {} and missing not in standin.records["incidents"]


async def test_a_change_set_in_trouble_is_unavailable_and_signs_in_again_once(standin: DynamicsStandIn,
                                                                              crm: DynamicsConnector) -> None:
    ann = standin.add_contact(firstname="Ann", lastname="Lee")
    iid = standin.add_incident(ann, "Pothole on Elm")
    standin.fail_status = 503
    with pytest.raises(CrmUnavailable, match="503"):
        await crm.update_case(iid, CaseUpdate(status="on_hold", note="Crew booked"))
    standin.fail_status = None
    standin.revoke_tokens()
    tokens = standin.token_requests
    await crm.update_case(iid, CaseUpdate(status="on_hold", note="Crew booked"))
    assert standin.token_requests == tokens + 1 and len(standin.records["annotations"]) == 1
    assert standin.violations == []


async def test_standin_batch_keeps_to_the_contract(standin: DynamicsStandIn) -> None:
    """The stand-in's $batch: a change set is all or nothing, and a malformed batch is refused."""
    ann = standin.add_contact(firstname="Ann", lastname="Lee")
    iid = standin.add_incident(ann, "Pothole on Elm")
    api = standin.org_url + API
    async with httpx.AsyncClient(base_url=api) as http:
        form = {"grant_type": "client_credentials", "client_id": standin.client_id,
                "client_secret": standin.client_secret, "scope": f"{standin.org_url}/.default"}
        token = (await http.post(standin.token_url, data=form)).json()["access_token"]
        auth = {**HEADERS, "Authorization": f"Bearer {token}"}

        async def batch(content: bytes, boundary: str) -> httpx.Response:
            return await http.post("/$batch", content=content, headers={
                **auth, "Content-Type": f'multipart/mixed; boundary="{boundary}"'})

        note = ("POST", "annotations", {"notetext": "n", "objectid_incident@odata.bind": f"/incidents({iid})"}, {})
        bad = ("PATCH", f"incidents({iid})", {"statuscode": 99}, {"If-Match": "*"})
        reply = await batch(*reversed(changeset_body(api, [note, bad])))
        assert reply.status_code == 400 and [s for s, _ in batch_statuses(reply)] == [400]
        assert "outside the valid range" in batch_statuses(reply)[0][1].decode()
        assert standin.records["annotations"] == {}  # the note before the refused PATCH is undone

        good = ("PATCH", f"incidents({iid})", {"statuscode": 2}, {"If-Match": "*"})
        reply = await batch(*reversed(changeset_body(api, [note, good])))
        assert reply.status_code == 200 and [s for s, _ in batch_statuses(reply)] == [204, 204]
        assert len(standin.records["annotations"]) == 1 and standin.records["incidents"][iid]["statuscode"] == 2

        boundary, body = changeset_body(api, [note, good])
        for broken, words in (
                (body.replace(b"Content-ID: 2\r\n", b""), "Content-ID"),
                (body.replace(b"PATCH " + api.encode(), b"GET " + api.encode()), "GET requests are not allowed"),
                (body.replace(b"application/http", b"application/json"), "application/http"),
                (body.replace(b"/annotations", b"/$batch"), "cannot contain another batch")):
            reply = await batch(broken, boundary)
            assert reply.status_code == 400 and words in batch_statuses(reply)[0][1].decode(), words
        reply = await http.post("/$batch", content=body, headers={**auth, "Content-Type": "application/json"})
        assert reply.status_code == 415
    assert len(standin.records["annotations"]) == 1
    assert len(standin.violations) == 6  # each refusal above, recorded


# ---- sign-in ------------------------------------------------------------------------------------------------

async def test_token_is_cached_renewed_before_expiry_and_refreshed_on_401(standin: DynamicsStandIn) -> None:
    clock = Clock()
    standin.token_lifetime_s = 3599
    crm = connector(standin, clock=clock)
    try:
        standin.add_contact(firstname="Ann", lastname="Lee", telephone1="9055550101")
        for _ in range(3):
            assert len(await crm.lookup(phone="9055550101")) == 1
        assert standin.token_requests == 1

        standin.revoke_tokens()  # the server forgets the token: one 401, one new sign-in, same answer
        assert len(await crm.lookup(phone="9055550101")) == 1
        assert standin.token_requests == 2
        assert [m for m, _ in standin.requests[-2:]] == ["GET", "GET"]

        standin.revoke_tokens()  # three calls refused at once still sign in only once
        found = await asyncio.gather(*(crm.lookup(phone="9055550101") for _ in range(3)))
        assert [len(f) for f in found] == [1, 1, 1] and standin.token_requests == 3

        clock.now += 3599 - 60  # a minute before expiry the token is renewed without waiting for a 401
        requests_before = len(standin.requests)
        assert len(await crm.lookup(phone="9055550101")) == 1
        assert standin.token_requests == 4 and len(standin.requests) == requests_before + 1
        assert standin.violations == []
    finally:
        await crm.close()


async def test_a_token_refused_twice_is_unavailable(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    standin.token_lifetime_s = -1  # every token the stand-in issues is already expired
    with pytest.raises(CrmUnavailable, match="401"):
        await crm.lookup(phone="9055550101")
    assert standin.token_requests == 2 and len(standin.requests) == 2


async def test_bad_credentials_say_what_sign_in_said(standin: DynamicsStandIn) -> None:
    crm = connector(standin, client_secret="wrong")
    try:
        with pytest.raises(CrmUnavailable, match="AADSTS7000215"):
            await crm.lookup(phone="9055550101")
    finally:
        await crm.close()
    crm = connector(standin, org_url="https://elsewhere.crm3.dynamics.com", token_url=standin.token_url)
    try:
        with pytest.raises(CrmUnavailable, match="invalid_scope"):
            await crm.lookup(phone="9055550101")
    finally:
        await crm.close()
    assert standin.requests == []


# ---- a CRM in trouble ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_unavailable(standin: DynamicsStandIn, crm: DynamicsConnector, status: int) -> None:
    standin.fail_status = status
    with pytest.raises(CrmUnavailable, match=f"answered {status}"):
        await crm.lookup(phone="9055550101")
    with pytest.raises(CrmUnavailable):
        await crm.create_case(CaseInput(service_code="pothole", description="hole",
                                        person_id="6f1c0a3e-0000-4000-8000-000000000001"))


async def test_garbage_is_unavailable(standin: DynamicsStandIn, crm: DynamicsConnector) -> None:
    standin.garbage = True
    with pytest.raises(CrmUnavailable, match="not JSON"):
        await crm.lookup(phone="9055550101")


async def test_unreachable_is_unavailable(standin: DynamicsStandIn) -> None:
    crm = connector(standin, org_url="http://127.0.0.1:9", token_url=standin.token_url)
    try:
        with pytest.raises(CrmUnavailable):
            await crm.lookup(phone="9055550101")
    finally:
        await crm.close()


async def test_slow_dynamics_gives_up_at_the_timeout_and_the_breaker_sheds_load(standin: DynamicsStandIn,
                                                                                crm: DynamicsConnector) -> None:
    standin.add_contact(firstname="Ann", lastname="Lee", telephone1="9055550101")
    assert len(await crm.lookup(phone="9055550101")) == 1  # signs in while the CRM is quick
    standin.delay_s = 2.0
    guard = GuardedConnector(crm, timeout_s=0.3, failures_to_open=2, open_for_s=60)
    started = time.monotonic()
    with pytest.raises(CrmUnavailable, match="did not answer within 0.3 s"):
        await guard.lookup(phone="9055550101")
    assert time.monotonic() - started < 1.5  # gave up at the timeout, did not wait the 2 s
    with pytest.raises(CrmUnavailable):
        await guard.lookup(phone="9055550101")
    assert guard.state is BreakerState.OPEN
    asked = len(standin.requests)
    with pytest.raises(CrmUnavailable, match="circuit open"):
        await guard.lookup(phone="9055550101")
    assert len(standin.requests) == asked  # failed fast, Dynamics not asked
