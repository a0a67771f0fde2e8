"""Open311 GeoReport v2 over a real HTTP server (uvicorn in a thread), on SQLite and PostgreSQL.

Three independent checks: the third-party `georeport` client (PyPI) reads services, definitions and
requests in JSON and XML; every JSON answer is checked against the field rules of the Open311 project's
own schemas (github.com/open311/schema-validation, schema/georeport-v2/*.json, transcribed below); and
our own client posts requests (the `georeport` client cannot) and every kind of bad input, which must get
the spec's error list and leave the case tables untouched. API keys are made and revoked with the CLI.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import yaml
from fastapi import FastAPI
from georeport import GeoReport
from live_server import serving
from sqlalchemy import select
from test_cti_cases import table_counts
from testsupport import fresh_schema

from cti.cases import Actor, CaseDraft, CaseStore, Location, ResidentDraft
from engine.app import create_app
from engine.cli import main as switchboard
from engine.configfile import load_file
from engine.settings import Settings
from engine.store.models import ApiKeyRow

REPO = Path(__file__).resolve().parents[2]
JURISDICTION = "lakeview.ca"

# --- the Open311 schemas' rules (open311/schema-validation, schema/georeport-v2) -----------------------

W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")  # zone required


def _string(v: Any) -> bool:
    return isinstance(v, str)


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _datetime(v: Any) -> bool:
    return isinstance(v, str) and bool(W3C.match(v))


def _uri(v: Any) -> bool:
    return isinstance(v, str) and bool(re.match(r"^[a-z][a-z0-9+.-]*://\S+$", v))


SERVICE = {"required": {"service_code", "service_name", "metadata", "type"}, "fields": {
    "service_code": _string, "service_name": _string, "description": _opt(_string),
    "metadata": lambda v: isinstance(v, bool), "type": lambda v: v in ("realtime", "batch", "blackbox"),
    "keywords": _opt(_string), "group": _opt(_string)}}
ATTRIBUTE = {"required": {"variable", "code", "datatype", "required"}, "fields": {
    "variable": lambda v: isinstance(v, bool), "code": _string,
    "datatype": lambda v: v in ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"),
    "required": lambda v: isinstance(v, bool), "datatype_description": _opt(_string),
    "order": _opt(lambda v: isinstance(v, int) and not isinstance(v, bool)), "description": _opt(_string),
    "values": lambda v: isinstance(v, list) and all(
        isinstance(x, dict) and set(x) == {"key", "name"} and _string(x["key"]) and _string(x["name"]) for x in v)}}
REQUEST = {"required": {"service_request_id", "status", "service_code", "requested_datetime"}, "fields": {
    "service_request_id": _string, "status": lambda v: v in ("open", "closed"), "status_notes": _opt(_string),
    "service_name": _opt(_string), "service_code": _string,
    "description": _opt(lambda v: isinstance(v, str) and len(v) <= 4000), "agency_responsible": _opt(_string),
    "service_notice": _opt(_string), "requested_datetime": _datetime, "updated_datetime": _opt(_datetime),
    "expected_datetime": _opt(_datetime), "address": _opt(_string), "address_id": _opt(_string),
    "zipcode": _opt(_string), "lat": _opt(_number), "long": _opt(_number), "media_url": _opt(_uri)}}


def violations(obj: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: not an object"]
    out = [f"{where}: missing {k}" for k in sorted(schema["required"] - set(obj))]
    out += [f"{where}: foreign field {k}" for k in sorted(set(obj) - set(schema["fields"]))]
    out += [f"{where}.{k}: bad value {obj[k]!r}" for k, ok in schema["fields"].items() if k in obj and not ok(obj[k])]
    return out


def conforms(data: Any, schema: dict[str, Any]) -> None:
    assert isinstance(data, list), data
    problems = [p for i, item in enumerate(data) for p in violations(item, schema, f"[{i}]")]
    assert not problems, problems


def error_list(r: httpx.Response, status: int) -> list[str]:
    """The spec's error body, in whichever format was asked for; returns the descriptions."""
    assert r.status_code == status, (r.status_code, r.text)
    if r.request.url.path.endswith(".xml"):
        assert r.headers["content-type"] == "text/xml; charset=utf-8"
        assert r.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
        root = ET.fromstring(r.content)
        assert root.tag == "errors" and len(root) >= 1
        assert all([c.tag for c in e] == ["code", "description"] and e.findtext("code") == str(status) for e in root)
        return [e.findtext("description") or "" for e in root]
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    body = r.json()
    assert isinstance(body, list) and body
    assert all(set(e) == {"code", "description"} and e["code"] == status for e in body), body
    return [e["description"] for e in body]


# --- a live server per back end ---------------------------------------------------------------------------

@dataclass
class Live:
    app: FastAPI
    base: str
    key: str
    http: httpx.Client
    db_url: str

    @property
    def cases(self) -> CaseStore:
        store: CaseStore = self.app.state.cases
        return store

    def post(self, fmt: str = "json", **fields: Any) -> httpx.Response:
        return self.http.post(f"{self.base}/requests.{fmt}", data={"api_key": self.key, **fields})

    def counts(self) -> dict[str, int]:
        return table_counts(self.app.state.store)


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = switchboard(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("open311")
    shutil.copy(REPO / "config" / "switchboard.yaml", tmp / "switchboard.yaml")
    # the catalogue next to the site file wins; here tax questions are a batch service (answered by token)
    catalogue = yaml.safe_load((REPO / "config" / "services.yaml").read_text())
    for service in catalogue["services"]:
        if service["code"] == "property-tax":
            service["open311_type"] = "batch"
    (tmp / "services.yaml").write_text(yaml.safe_dump(catalogue))
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            db_url = f"sqlite:///{tmp / 'switchboard.db'}"
        else:
            db_url = stack.enter_context(fresh_schema(request.getfixturevalue("pg_server_url")))
        code, out = cli("apikey", "add", "web-portal", "--database-url", db_url)
        assert code == 0
        key = out.strip()
        app = create_app(Settings(data_dir=tmp / "data", database_url=db_url), load_file(tmp / "switchboard.yaml"))
        base = stack.enter_context(serving(app))
        http = stack.enter_context(httpx.Client(timeout=30))
        yield Live(app, f"{base}/open311/v2", key, http, db_url)


@pytest.fixture
def clean(live: Live) -> Live:
    """The live server with an empty case store (the tests in this module share one server)."""
    with live.app.state.store.db.write() as conn:
        for table in ("case_attachments", "case_notes", "case_history", "cases", "case_sequences",
                      "resident_contacts", "residents"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    return live


def client(live: Live, fmt: str) -> GeoReport:
    return GeoReport(live.base, jurisdiction=JURISDICTION, output_format=fmt)


# --- services -------------------------------------------------------------------------------------------

def test_services_through_the_georeport_client(live: Live) -> None:
    services = client(live, "json").get_service_list()
    conforms(services, SERVICE)
    by_code = {s["service_code"]: s for s in services}
    assert set(by_code) == set(live.cases.catalogue.services)
    assert by_code["pothole"] == {
        "service_code": "pothole", "service_name": "Pothole",
        "description": "A hole or broken pavement in a road, lane or municipal parking lot.", "metadata": True,
        "type": "realtime", "keywords": "road, pavement, hole, asphalt", "group": "streets"}
    assert by_code["water-main-break"]["metadata"] is False
    assert by_code["property-tax"]["type"] == "batch"

    xml_services = client(live, "xml").get_service_list()  # xmltodict: every value is text
    assert [s["service_code"] for s in xml_services] == [s["service_code"] for s in services]
    assert {k: v for k, v in xml_services[0].items()} == {
        k: ("true" if v is True else "false" if v is False else v) for k, v in services[0].items()}


def test_service_definitions_through_the_georeport_client(live: Live) -> None:
    definition = client(live, "json").get_service_definition("missed-garbage")
    assert set(definition) == {"service_code", "attributes"} and definition["service_code"] == "missed-garbage"
    problems = [p for i, a in enumerate(definition["attributes"]) for p in violations(a, ATTRIBUTE, f"[{i}]")]
    assert not problems, problems
    stream, day = definition["attributes"]
    assert (stream["code"], stream["datatype"], stream["required"], stream["order"]) == \
        ("stream", "multivaluelist", True, 1)
    assert {"key": "organics", "name": "Green bin"} in stream["values"]
    assert (day["code"], day["datatype"], day["required"], day["order"]) == ("collection_day", "datetime", False, 2)
    assert "values" not in day

    xml_def = client(live, "xml").get_service_definition("missed-garbage")
    xml_attrs = xml_def["attributes"]["attribute"]
    assert [a["code"] for a in xml_attrs] == ["stream", "collection_day"]
    assert [v["key"] for v in xml_attrs[0]["values"]["value"]] == ["garbage", "recycling", "organics", "yard"]
    assert xml_attrs[0]["required"] == "true" and xml_attrs[0]["order"] == "1"

    assert client(live, "json").get_service_definition("water-main-break")["attributes"] == []
    missing = live.http.get(f"{live.base}/services/graffiti.json")
    assert "service_code 'graffiti' not found" in error_list(missing, 404)[0]
    assert error_list(live.http.get(f"{live.base}/services/graffiti.xml"), 404)
    wrong = live.http.get(f"{live.base}/services.json", params={"jurisdiction_id": "elsewhere.ca"})
    assert "jurisdiction_id 'elsewhere.ca' not found" in error_list(wrong, 404)[0]


# --- filing and tracking ----------------------------------------------------------------------------------

def test_post_a_request_then_track_it_with_the_georeport_client(clean: Live) -> None:
    live = clean
    r = live.post(service_code="missed-garbage", lat="43.8971", long="-78.8658",
                  address_string="22 Maple Cres, Lakeview ON L1A 2B3", description="Green bin skipped again",
                  email="Pat@Example.ca", first_name="Pat", last_name="Singh", phone="905 555 0142",
                  account_id="acct-7", device_id="dev-1", media_url="https://photos.example.ca/bin.jpg",
                  **{"attribute[stream][]": ["organics", "garbage"], "attribute[collection_day]": "2026-11-20"},
                  jurisdiction_id=JURISDICTION)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    [answer] = r.json()
    ref = answer["service_request_id"]
    assert re.fullmatch(r"SR-\d{4}-\d{6}", ref) and "token" not in answer
    assert answer["account_id"] == "acct-7" and "Expected response by" in answer["service_notice"]

    got = client(live, "json").get_service_request(ref)
    conforms([got], REQUEST)
    assert (got["service_request_id"], got["status"], got["service_code"]) == (ref, "open", "missed-garbage")
    assert (got["lat"], got["long"]) == (43.8971, -78.8658)
    assert got["address"] == "22 Maple Cres, Lakeview ON L1A 2B3"
    assert got["description"] == "Green bin skipped again" and got["agency_responsible"] == "Waste"
    assert got["media_url"] == "https://photos.example.ca/bin.jpg"
    requested = datetime.fromisoformat(got["requested_datetime"])
    assert abs(requested - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert datetime.fromisoformat(got["expected_datetime"]) > requested
    assert not {"email", "phone", "first_name", "account_id"} & set(got)  # the submitter is never published

    xml_got = client(live, "xml").get_service_request(ref)
    assert {k: xml_got[k] for k in ("service_request_id", "status", "lat", "long")} == \
        {"service_request_id": ref, "status": "open", "lat": "43.8971", "long": "-78.8658"}

    # stored as a case like any other: channel web, filed by the key's owner, resident matched by e-mail
    case = live.cases.get(ref)
    assert case is not None
    assert (case.channel, case.source, case.filed_by) == ("web", "open311", "apikey:web-portal")
    assert case.attributes == {"stream": ["garbage", "organics"], "collection_day": "2026-11-20"}
    assert case.requester["device_id"] == "dev-1"
    again = live.post(service_code="noise", address_string="1 Elm", email="pat@example.ca",
                      **{"attribute[source]": "animal"})
    assert live.cases.get(again.json()[0]["service_request_id"]).resident_id == case.resident_id  # type: ignore[union-attr]

    # the agents work it; the web site sees status and notes, closed when a supervisor approves
    for status, who in (("in_progress", Actor("alice", "user", "agent")),
                        ("pending_approval", Actor("alice", "user", "agent")),
                        ("closed", Actor("sam", "user", "supervisor"))):
        live.cases.change_status(ref, status, who, "Collected on Tuesday" if status == "closed" else None)
    closed = client(live, "json").get_service_request(ref)
    assert (closed["status"], closed["status_notes"]) == ("closed", "Collected on Tuesday")
    assert closed["updated_datetime"] >= closed["requested_datetime"]  # to the second

    listed = client(live, "json").get_service_requests(status="closed")
    conforms(listed, REQUEST)
    assert [x["service_request_id"] for x in listed] == [ref]
    assert [x["service_code"] for x in client(live, "json").get_service_requests(status="open")] == ["noise"]
    xml_listed = client(live, "xml").get_service_requests(service_code="missed-garbage")
    assert xml_listed["service_request_id"] == ref  # one request: xmltodict gives the element itself


def test_post_in_xml_and_json_bodies(clean: Live) -> None:
    live = clean
    r = live.post("xml", service_code="tree-down", address_id="ADDR-4471", **{"attribute[blocking]": "road"})
    assert r.status_code == 201 and r.headers["content-type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(r.content)
    assert root.tag == "service_requests" and [c.tag for c in root] == ["request"]
    assert [c.tag for c in root[0]] == ["service_request_id", "service_notice", "account_id"]
    assert root[0].findtext("account_id") == ""
    as_json = live.http.post(f"{live.base}/requests.json", json={
        "api_key": live.key, "service_code": "missed-garbage", "lat": 43.9, "long": -78.9,
        "attribute": {"stream": ["yard"]}})
    assert as_json.status_code == 201, as_json.text
    case = live.cases.get(as_json.json()[0]["service_request_id"])
    assert case is not None and case.attributes == {"stream": ["yard"]}


def test_batch_services_answer_a_token(clean: Live) -> None:
    live = clean
    r = live.post(service_code="property-tax", address_string="Tax roll 1234", description="Instalment date?")
    assert r.status_code == 201, r.text
    [answer] = r.json()
    assert "service_request_id" not in answer and answer["token"]
    found = live.http.get(f"{live.base}/tokens/{answer['token']}.json")
    assert found.status_code == 200
    [pair] = found.json()
    assert pair["token"] == answer["token"] and re.fullmatch(r"SR-\d{4}-\d{6}", pair["service_request_id"])
    xml_pair = ET.fromstring(live.http.get(f"{live.base}/tokens/{answer['token']}.xml").content)
    assert xml_pair[0].findtext("service_request_id") == pair["service_request_id"]
    assert "not found" in error_list(live.http.get(f"{live.base}/tokens/nope.json"), 404)[0]


def test_desk_cases_are_trackable_by_reference_without_personal_details(clean: Live) -> None:
    live = clean
    case = live.cases.create(CaseDraft(
        "parking", "voice", description="Neighbour's van blocks my driveway, I'm at 905-555-0199",
        location=Location(address="14 Oak Ave"), attributes={"violation": ["driveway"]},
        resident=ResidentDraft("Ana", "Costa", phones=("9055550199",)), on_behalf_of="Cllr. Roe"),
        Actor("alice", "user", "agent"))
    [got] = live.http.get(f"{live.base}/requests/{case.reference.lower()}.json").json()
    conforms([got], REQUEST)
    assert got["service_request_id"] == case.reference and got["agency_responsible"] == "By-law"
    assert got["description"] is None  # what was said on the phone stays private
    assert "Costa" not in str(got) and "0199" not in str(got) and "Roe" not in str(got)
    assert "not found" in error_list(live.http.get(f"{live.base}/requests/SR-2020-000001.json"), 404)[0]
    assert error_list(live.http.get(f"{live.base}/requests/nonsense.xml"), 404)


def test_get_requests_filters_and_window(clean: Live) -> None:
    live = clean
    real_clock = live.cases.clock
    now = datetime.now(timezone.utc)
    try:
        live.cases.clock = lambda: now - timedelta(days=100)
        old = live.post(service_code="pothole", address_string="1 Old Rd").json()[0]["service_request_id"]
    finally:
        live.cases.clock = real_clock
    fresh = [live.post(service_code=code, address_string="2 New Rd", **attrs).json()[0]["service_request_id"]
             for code, attrs in (("pothole", {}), ("noise", {"attribute[source]": "business"}))]
    get = client(live, "json").get_service_requests

    assert {x["service_request_id"] for x in get()} == set(fresh)  # the default window: the last 90 days
    window = get(start_date=(now - timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 end_date=(now - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert [x["service_request_id"] for x in window] == [old]
    assert {x["service_request_id"] for x in get(service_request_id=f"{old},{fresh[1]}")} == {old, fresh[1]}
    assert [x["service_request_id"] for x in get(service_code="noise")] == [fresh[1]]
    assert {x["service_request_id"] for x in get(service_code="noise,pothole", status="open")} == set(fresh)
    assert get(status="closed") == []
    paged = live.http.get(f"{live.base}/requests.json", params={"page_size": 1, "page": 2}).json()
    assert [x["service_request_id"] for x in paged] == [fresh[0]]

    bad = {
        (("start_date", "yesterday"),): (400, "not a W3C date-time"),
        (("start_date", "2026-01-01T00:00:00Z"), ("end_date", "2026-06-01T00:00:00Z")): (400, "90 days"),
        (("start_date", "2026-06-01T00:00:00Z"), ("end_date", "2026-01-01T00:00:00Z")): (400, "before"),
        (("status", "pending"),): (400, "not open or closed"),
        (("service_code", "graffiti"),): (404, "'graffiti' not found"),
        (("page_size", "5000"),): (400, "page_size"),
        (("jurisdiction_id", "elsewhere.ca"),): (404, "jurisdiction_id"),
    }
    for params, (status, words) in bad.items():
        for fmt in ("json", "xml"):
            descriptions = error_list(live.http.get(f"{live.base}/requests.{fmt}", params=dict(params)), status)
            assert any(words in d for d in descriptions), (params, descriptions)


BAD_POSTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("no service_code", {"lat": "43.9", "long": "-78.9"}, 400, "service_code: missing"),
    ("unknown service", {"service_code": "graffiti", "lat": "43.9", "long": "-78.9"}, 404, "'graffiti' not found"),
    ("no location", {"service_code": "pothole"}, 400, "address_string or an address_id"),
    ("latitude out of range", {"service_code": "pothole", "lat": "91", "long": "-78.9"}, 400, "between -90 and 90"),
    ("longitude out of range", {"service_code": "pothole", "lat": "43.9", "long": "-181"}, 400, "-180 and 180"),
    ("latitude not a number", {"service_code": "pothole", "lat": "north", "long": "-78.9"}, 400, "not a number"),
    ("latitude is NaN", {"service_code": "pothole", "lat": "nan", "long": "-78.9"}, 400, "finite"),
    ("lat without long", {"service_code": "pothole", "lat": "43.9"}, 400, "sent together"),
    ("required attribute missing", {"service_code": "noise", "address_string": "1 Elm"}, 400,
     "attribute[source]: is required"),
    ("attribute value not offered", {"service_code": "noise", "address_string": "1 Elm",
                                     "attribute[source]": "aliens"}, 400, "no choice 'aliens'"),
    ("unknown attribute", {"service_code": "pothole", "address_string": "1 Elm", "attribute[colour]": "red"},
     400, "not an attribute"),
    ("description too long", {"service_code": "pothole", "address_string": "1 Elm", "description": "x" * 4001},
     400, "4000"),
    ("bad e-mail", {"service_code": "pothole", "address_string": "1 Elm", "email": "pat@"}, 400, "e-mail"),
    ("bad media_url", {"service_code": "pothole", "address_string": "1 Elm", "media_url": "file:///etc/passwd"},
     400, "media_url"),
    ("other jurisdiction", {"service_code": "pothole", "address_string": "1 Elm", "jurisdiction_id": "x.ca"},
     404, "jurisdiction_id"),
]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_requests_get_open311_errors_and_store_nothing(clean: Live, fmt: str) -> None:
    live = clean
    live.post(service_code="pothole", address_string="1 Elm")  # something already there, to stay unchanged
    before = live.counts()
    for name, fields, status, words in BAD_POSTS:
        descriptions = error_list(live.post(fmt, **fields), status)
        assert any(words in d for d in descriptions), (name, descriptions)
    several = error_list(live.post(fmt, service_code="noise", lat="95", long="200"), 400)
    assert len(several) == 3  # lat, long and the missing attribute, all at once

    for key in ("", "sbk_not-a-real-key", "x" * 500):
        fields = {"service_code": "pothole", "address_string": "1 Elm"}
        r = live.http.post(f"{live.base}/requests.{fmt}", data={"api_key": key, **fields} if key else fields)
        assert "api_key" in error_list(r, 403)[0]
    wrong_type = live.http.post(f"{live.base}/requests.{fmt}", content=b"<request/>",
                                headers={"content-type": "application/xml"})
    assert error_list(wrong_type, 400)
    assert live.counts() == before


def test_unknown_resources_and_methods_answer_in_open311_format(live: Live) -> None:
    assert "no such resource" in error_list(live.http.get(f"{live.base}/nothing.json"), 404)[0]
    assert error_list(live.http.get(f"{live.base}/services.csv"), 404)
    refused = live.http.delete(f"{live.base}/requests.xml")
    assert "not allowed" in error_list(refused, 405)[0] and refused.headers["allow"] == "GET, POST"
    discovery = live.http.get(f"{live.base}/discovery.json").json()
    assert discovery["endpoints"][0]["url"] == live.base
    assert discovery["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"


def test_api_keys_from_the_cli(live: Live) -> None:
    code, out = cli("apikey", "add", "answering-service", "--database-url", live.db_url)
    assert code == 0
    key = out.strip()
    assert key.startswith("sbk_") and len(key) > 40
    with live.app.state.store.db.read() as conn:
        row = conn.execute(select(ApiKeyRow.__table__).where(ApiKeyRow.__table__.c.name == "answering-service")).one()
    assert row.key_hash == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(tuple(row))  # only the hash is kept
    assert cli("apikey", "add", "answering-service", "--database-url", live.db_url)[0] == 1  # names are unique
    assert cli("apikey", "add", "bad name!", "--database-url", live.db_url)[0] == 2
    names = [line.split("\t")[0] for line in cli("apikey", "list", "--database-url", live.db_url)[1].splitlines()]
    assert {"answering-service", "web-portal"} <= set(names)

    filed = live.http.post(f"{live.base}/requests.json", data={
        "api_key": key, "service_code": "tree-down", "address_string": "Lakeshore Rd at Pine",
        "attribute[blocking]": "road"})
    assert filed.status_code == 201, filed.text
    assert live.cases.get(filed.json()[0]["service_request_id"]).filed_by == "apikey:answering-service"  # type: ignore[union-attr]
    assert cli("apikey", "revoke", "answering-service", "--database-url", live.db_url) == \
        (0, "revoked answering-service\n")
    assert cli("apikey", "revoke", "answering-service", "--database-url", live.db_url)[0] == 1
    again = live.http.post(f"{live.base}/requests.json", data={
        "api_key": key, "service_code": "tree-down", "address_string": "x", "attribute[blocking]": "road"})
    assert "Invalid api_key" in error_list(again, 403)[0]
