"""The case store on SQLite and PostgreSQL: reference numbers, catalogue rules, lifecycle, history, photos,
residents, ageing; and the /api/v1 case API for agents and supervisors.

PostgreSQL comes from SWITCHBOARD_TEST_POSTGRES_URL (default: the local server); if it cannot be reached
these tests fail and say so. The fixtures follow tests/engine/conftest.py (a fresh schema per test).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cti.business_days import BusinessCalendar
from cti.cases import (
    Actor,
    ApprovalRequired,
    CaseDraft,
    CaseInputError,
    CaseQuery,
    CaseStore,
    ChannelNotAllowed,
    InvalidTransition,
    Location,
    PhotoRejected,
    ResidentDraft,
    UnknownCase,
    UnknownResident,
    UnknownService,
    normalise_phone,
    parse_reference,
)
from cti.catalogue import Catalogue
from engine.app import create_app
from engine.configfile import ConfigFileError, load_file
from engine.settings import Settings
from engine.store.models import Base
from engine.store.store import Store
from testsupport import fresh_schema

REPO = Path(__file__).resolve().parents[2]
PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CASE_TABLES = ("residents", "resident_contacts", "case_sequences", "cases", "case_history", "case_notes",
               "case_attachments")
# the smallest valid PNG (1x1 transparent)
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
ALICE = Actor("alice", "user", "agent")
SAM = Actor("sam", "user", "supervisor")


# --- database fixtures (shared with test_cti_open311.py) -------------------------------------------------

@pytest.fixture(params=("sqlite", "postgresql"))
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'switchboard.db'}"
        return
    with fresh_schema(request.getfixturevalue("pg_server_url")) as url:
        yield url


def table_counts(store: Store) -> dict[str, int]:
    with store.db.read() as conn:
        return {t: conn.execute(select(func.count()).select_from(Base.metadata.tables[t])).scalar_one()
                for t in CASE_TABLES}


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def opened(db_url: str) -> Iterator[Callable[[], Store]]:
    stores: list[Store] = []

    def _open() -> Store:
        s = Store(db_url)
        stores.append(s)
        return s

    yield _open
    for s in stores:
        s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc))  # Monday 10:00 in Toronto


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue.load(REPO / "config" / "services.yaml")


@pytest.fixture
def store(opened: Callable[[], Store]) -> Store:
    s = opened()
    s.migrate()
    return s


@pytest.fixture
def cases(store: Store, catalogue: Catalogue, clock: Clock, tmp_path: Path) -> CaseStore:
    return CaseStore(store.db, catalogue, BusinessCalendar("CA-ON", day_ends=datetime(2000, 1, 1, 18).time()),
                     attachments_dir=tmp_path / "attachments", clock=clock)


def pothole(**kw: Any) -> CaseDraft:
    base: dict[str, Any] = {"service_code": "pothole", "channel": "voice", "description": "deep hole by the curb",
                            "location": Location(address="12 Elm St, Lakeview", lat=43.9, long=-78.85),
                            "attributes": {"size": ["large"]}}
    base.update(kw)
    return CaseDraft(**base)


# --- the catalogue -----------------------------------------------------------------------------------

def test_shipped_catalogue(catalogue: Catalogue) -> None:
    assert set(catalogue.services) == {"pothole", "streetlight-out", "missed-garbage", "noise", "parking",
                                       "tree-down", "water-main-break", "property-tax"}
    assert {d.name for d in catalogue.departments.values()} == {"Roads", "Waste", "By-law", "Finance", "Water"}
    parking = catalogue.services["parking"]
    assert catalogue.department_name(parking.department) == "By-law"
    assert not parking.takes("email") and parking.takes("voice")
    water = catalogue.services["water-main-break"]
    assert (water.priority, water.response_days, catalogue.department_name(water.department)) == ("urgent", 0, "Water")
    assert catalogue.services["property-tax"].department == "finance"
    assert not catalogue.services["property-tax"].needs_location


def test_catalogue_problems_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(
        "departments:\n"
        "  roads: {name: Roads}\n"
        "services:\n"
        "  - code: pothole\n"
        "    name: Pothole\n"
        "    department: parks\n"
        "    response_days: 5\n"
        "    channels: [voice]\n"
        "  - code: pothole\n"
        "    name: Pothole again\n"
        "    department: roads\n"
        "    response_days: 5\n"
        "    channels: [voice]\n")
    with pytest.raises(ConfigFileError) as caught:
        Catalogue.load(path)
    text_ = str(caught.value)
    assert f"{path}:6: services.0.department: unknown department 'parks'" in text_
    assert f"{path}:9: services.1.code: service code 'pothole' is used twice" in text_
    path.write_text(
        "departments: {roads: {name: Roads}}\n"
        "services:\n"
        "  - code: pothole\n"
        "    name: Pothole\n"
        "    department: roads\n"
        "    response_days: -1\n"
        "    channels: [fax]\n"
        "    attributes:\n"
        "      - {code: size, datatype: singlevaluelist, description: \"How big\"}\n")
    with pytest.raises(ConfigFileError) as caught:
        Catalogue.load(path)
    problems = {(p.line, p.field) for p in caught.value.problems}
    assert (6, "services.0.response_days") in problems
    assert (7, "services.0.channels.0") in problems
    assert (9, "services.0.attributes.0") in problems  # a singlevaluelist without values


# --- filing ------------------------------------------------------------------------------------------

def test_file_a_case_with_reference_acknowledgement_and_history(cases: CaseStore, store: Store) -> None:
    first = cases.create(pothole(resident=ResidentDraft("Ann", "Lee", phones=("905-555-0123",))), ALICE)
    second = cases.create(pothole(), ALICE)
    assert (first.reference, second.reference) == ("SR-2026-000001", "SR-2026-000002")
    assert first.status == "acknowledged" and first.acknowledged_at == cases.clock()
    # 5 business days from Monday November 23: Monday November 30, at the close of business (18:00 EST)
    assert first.expected_at == datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)
    assert first.service_notice is not None and "Monday November 30, 2026" in first.service_notice
    assert (first.department, first.department_name, first.priority) == ("roads", "Roads", "normal")
    assert first.location == Location("12 Elm St, Lakeview", None, None, 43.9, -78.85)
    assert first.attributes == {"size": "large"} and first.filed_by == "alice"

    detail = cases.detail("sr-2026-1")  # as a person reads it out
    assert detail.case.reference == "SR-2026-000001"
    assert detail.resident is not None and detail.resident.phones == ("+19055550123",)
    assert [(h.action, h.from_status, h.to_status, h.actor) for h in detail.history] == [
        ("created", None, "new", "alice"), ("acknowledged", "new", "acknowledged", "alice")]
    assert detail.history[0].detail["resident_match"] == "created"
    assert detail.history[1].detail["response_days"] == 5

    # not acknowledged yet: it waits as new, with the same target already known
    quiet = cases.create(pothole(acknowledge=False), ALICE)
    assert (quiet.status, quiet.acknowledged_at) == ("new", None)
    assert table_counts(store)["cases"] == 3


def test_urgent_water_main_break_is_due_the_same_business_day(cases: CaseStore, clock: Clock) -> None:
    clock.now = datetime(2026, 11, 21, 15, 0, tzinfo=timezone.utc)  # a Saturday
    case = cases.create(CaseDraft("water-main-break", "voice", location=Location(address="Main St & 2nd Ave")),
                        ALICE)
    assert case.priority == "urgent"
    assert case.expected_at == datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc)  # Monday, close of business


def test_reference_year_is_the_local_year_and_restarts_at_one(cases: CaseStore, clock: Clock) -> None:
    clock.now = datetime(2027, 1, 1, 4, 30, tzinfo=timezone.utc)  # still 23:30 on Dec 31 in Toronto
    assert cases.create(pothole(), ALICE).reference == "SR-2026-000001"
    clock.now = datetime(2027, 1, 1, 5, 30, tzinfo=timezone.utc)  # 00:30 on Jan 1
    assert cases.create(pothole(), ALICE).reference == "SR-2027-000001"
    assert cases.create(pothole(), ALICE).reference == "SR-2027-000002"
    assert parse_reference(" sr 2027 2") is None and parse_reference("SR2027-2") == "SR-2027-000002"


def test_a_failed_filing_stores_nothing_and_gives_its_number_back(cases: CaseStore, store: Store,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real_log = cases._log

    def failing_log(*args: Any, **kw: Any) -> None:
        raise RuntimeError("disk on fire")  # after the number, the resident and the case row were written

    monkeypatch.setattr(cases, "_log", failing_log)
    with pytest.raises(RuntimeError):
        cases.create(pothole(resident=ResidentDraft("Ann", emails=("ann@example.ca",))), ALICE)
    assert set(table_counts(store).values()) == {0}
    monkeypatch.setattr(cases, "_log", real_log)
    assert cases.create(pothole(), ALICE).reference == "SR-2026-000001"


def test_references_are_unique_and_gapless_under_concurrent_filing(cases: CaseStore, opened: Callable[[], Store],
                                                                   catalogue: Catalogue, clock: Clock,
                                                                   tmp_path: Path) -> None:
    # two "processes" (separate engines and pools), four threads each
    other = CaseStore(opened().db, catalogue, cases.calendar, attachments_dir=tmp_path / "a2", clock=clock)
    refs: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def file_some(target: CaseStore) -> None:
        try:
            start.wait()
            for _ in range(6):
                ref = target.create(pothole(), ALICE).reference
                with lock:
                    refs.append(ref)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=file_some, args=(cases if i % 2 else other,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(refs) == [f"SR-2026-{n:06d}" for n in range(1, 49)]


@pytest.mark.parametrize("draft, field, message", [
    (pothole(location=Location(address="x", lat=91.0, long=10.0)), "lat", "between -90 and 90"),
    (pothole(location=Location(lat=43.0, long=-181.0)), "long", "between -180 and 180"),
    (pothole(location=Location(lat=43.0)), "long", "sent together"),
    (pothole(location=Location(lat=float("nan"), long=1.0)), "lat", "between -90 and 90"),
    (pothole(location=Location()), "location", "address_string"),
    (pothole(attributes={"size": ["huge"]}), "attribute[size]", "no choice 'huge'"),
    (pothole(attributes={"colour": ["red"]}), "attribute[colour]", "not an attribute"),
    (CaseDraft("streetlight-out", "voice", location=Location(address="x")), "attribute[problem]", "required"),
    (pothole(description="x" * 4001), "description", "4000"),
    (pothole(channel="fax"), "channel", "unknown channel"),
    (pothole(media_url="javascript:alert(1)"), "media_url", "http"),
    (pothole(resident=ResidentDraft(phones=("call me",))), "resident.phones.0", "not a phone number"),
    (pothole(resident=ResidentDraft(emails=("ann@",))), "resident.emails.0", "not an e-mail"),
    (pothole(on_behalf_role="councillor"), "on_behalf_of", "say who"),
])
def test_bad_input_is_refused_field_by_field_and_stores_nothing(cases: CaseStore, store: Store, draft: CaseDraft,
                                                                field: str, message: str) -> None:
    with pytest.raises(CaseInputError) as caught:
        cases.create(draft, ALICE)
    assert any(f == field and message in m for f, m in caught.value.problems), caught.value.problems
    assert set(table_counts(store).values()) == {0}


def test_channel_rules_and_unknown_services(cases: CaseStore, store: Store) -> None:
    parking = CaseDraft("parking", "email", location=Location(address="14 Oak Ave"),
                        attributes={"violation": ["driveway"]})
    with pytest.raises(ChannelNotAllowed, match="Parking complaint requests are not taken by email"):
        cases.create(parking, ALICE)
    with pytest.raises(UnknownService, match="'graffiti'"):
        cases.create(CaseDraft("graffiti", "voice", location=Location(address="x")), ALICE)
    with pytest.raises(UnknownResident):
        cases.create(pothole(resident_id=999), ALICE)
    assert set(table_counts(store).values()) == {0}
    ok = cases.create(CaseDraft("parking", "sms", location=Location(address="14 Oak Ave"),
                                attributes={"violation": ["driveway"]}), ALICE)
    assert ok.channel == "sms"
    # a tax question needs no location
    assert cases.create(CaseDraft("property-tax", "email", description="When is the next instalment due?"),
                        ALICE).location == Location()


def test_filed_on_behalf_of_a_councillor(cases: CaseStore) -> None:
    case = cases.create(pothole(on_behalf_of="Cllr. Jane Roe, Ward 3", on_behalf_role="councillor",
                                resident=ResidentDraft("Omar", "Haddad", emails=("omar@example.ca",))), SAM)
    assert (case.on_behalf_of, case.on_behalf_role, case.filed_by) == ("Cllr. Jane Roe, Ward 3", "councillor", "sam")
    created = cases.detail(case.reference).history[0]
    assert created.detail["on_behalf_of"] == "Cllr. Jane Roe, Ward 3"
    assert created.detail["on_behalf_role"] == "councillor"


# --- residents ---------------------------------------------------------------------------------------

def test_residents_are_matched_and_found_by_phone_and_email(cases: CaseStore, store: Store) -> None:
    first = cases.create(pothole(resident=ResidentDraft("Ann", "Lee", phones=("(905) 555-0123",),
                                                        emails=("Ann.Lee@Example.ca",))), ALICE)
    # the same person calls again from the same number, written differently: matched, not duplicated
    again = cases.create(pothole(resident=ResidentDraft("A.", "Lee", phones=("+1 905 555 0123",))), ALICE)
    by_mail = cases.create(pothole(resident=ResidentDraft(emails=("ann.lee@example.ca",))), ALICE)
    assert first.resident_id == again.resident_id == by_mail.resident_id
    assert cases.detail(again.reference).history[0].detail["resident_match"] == "matched"
    assert table_counts(store)["residents"] == 1
    assert [r.name for r in cases.find_residents(phone="9055550123")] == ["Ann Lee"]  # never renamed
    assert [r.id for r in cases.find_residents(email="ANN.LEE@example.ca")] == [first.resident_id]
    assert [r.id for r in cases.find_residents(name="lee")] == [first.resident_id]
    assert cases.find_residents(name="%") == [] and cases.find_residents(name="_") == []  # no wildcards
    assert cases.find_residents(phone="905-555-9999") == []
    with pytest.raises(CaseInputError):
        cases.find_residents(phone="not a number")
    opened = cases.cases_of([first.resident_id or 0])[first.resident_id or 0]
    assert [c.reference for c in opened] == [by_mail.reference, again.reference, first.reference]
    assert normalise_phone("+44 20 7946 0958") == "+442079460958" and normalise_phone("555-0123") is None


# --- lifecycle ---------------------------------------------------------------------------------------

def test_lifecycle_with_supervisor_approval_to_close(cases: CaseStore, clock: Clock) -> None:
    ref = cases.create(pothole(acknowledge=False), ALICE).reference
    with pytest.raises(InvalidTransition, match="new: it cannot move to closed"):
        cases.change_status(ref, "closed", SAM)
    clock.now += timedelta(minutes=5)
    assert cases.change_status(ref, "acknowledged", ALICE).acknowledged_at == clock.now
    cases.change_status(ref, "in_progress", Actor("roads-desk", "user", "agent"), "crew booked for Thursday")
    waiting = cases.change_status(ref, "pending_approval", ALICE, "patched")
    assert (waiting.status, waiting.status_notes) == ("pending_approval", "patched")
    with pytest.raises(ApprovalRequired, match="only a supervisor may approve closing"):
        cases.change_status(ref, "closed", ALICE)
    with pytest.raises(ApprovalRequired):
        cases.change_status(ref, "in_progress", ALICE)  # sending it back is the supervisor's call too
    with pytest.raises(ApprovalRequired):
        cases.change_status(ref, "closed", Actor("web-portal", "apikey"))
    clock.now += timedelta(hours=1)
    closed = cases.change_status(ref, "closed", SAM, "Repaired; resident told by phone")
    assert (closed.status, closed.open311_status, closed.closed_at) == ("closed", "closed", clock.now)
    with pytest.raises(InvalidTransition):
        cases.change_status(ref, "closed", SAM)
    with pytest.raises(ApprovalRequired):
        cases.change_status(ref, "in_progress", ALICE)
    reopened = cases.change_status(ref, "in_progress", SAM, "resident says it is back")
    assert (reopened.status, reopened.closed_at, reopened.open311_status) == ("in_progress", None, "open")
    with pytest.raises(CaseInputError):
        cases.change_status(ref, "done", SAM)
    with pytest.raises(UnknownCase):
        cases.change_status("SR-2026-999999", "in_progress", SAM)

    history = [(h.action, h.from_status, h.to_status, h.actor, h.detail.get("note"))
               for h in cases.detail(ref).history]
    assert history == [
        ("created", None, "new", "alice", None),
        ("status", "new", "acknowledged", "alice", None),
        ("status", "acknowledged", "in_progress", "roads-desk", "crew booked for Thursday"),
        ("status", "in_progress", "pending_approval", "alice", "patched"),
        ("status", "pending_approval", "closed", "sam", "Repaired; resident told by phone"),
        ("reopened", "closed", "in_progress", "sam", "resident says it is back"),
    ]


def test_notes_and_photos(cases: CaseStore, store: Store, tmp_path: Path) -> None:
    ref = cases.create(pothole(), ALICE).reference
    note = cases.add_note(ref, "  Resident will send a photo.  ", ALICE)
    assert (note.body, note.author) == ("Resident will send a photo.", "alice")
    att = cases.attach_photo(ref, "C:\\Users\\ann\\..\\pothole.png", PNG, ALICE)
    assert (att.filename, att.content_type, att.size) == ("pothole.png", "image/png", len(PNG))
    meta, path = cases.attachment(ref, att.id)
    assert path.read_bytes() == PNG and path.is_relative_to(tmp_path / "attachments" / ref)
    assert meta.sha256 == hashlib.sha256(PNG).hexdigest()
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
    assert cases.attach_photo(ref, "", jpeg, ALICE).filename == "photo.jpg"

    before = table_counts(store)
    with pytest.raises(PhotoRejected) as caught:
        cases.attach_photo(ref, "notes.txt", b"just text, not a photo", ALICE)
    assert caught.value.status == 415
    with pytest.raises(PhotoRejected) as caught:
        cases.attach_photo(ref, "empty.png", b"", ALICE)
    assert caught.value.status == 422
    small = CaseStore(cases.db, cases.catalogue, cases.calendar, attachments_dir=tmp_path / "attachments",
                      max_photo_bytes=50)
    with pytest.raises(PhotoRejected) as caught:
        small.attach_photo(ref, "big.png", PNG, ALICE)
    assert caught.value.status == 413
    with pytest.raises(UnknownCase):
        cases.attach_photo("SR-2026-000099", "x.png", PNG, ALICE)
    with pytest.raises(CaseInputError):
        cases.add_note(ref, "   ", ALICE)
    assert table_counts(store) == before
    assert len(list((tmp_path / "attachments" / ref).iterdir())) == 2  # no stray files

    detail = cases.detail(ref)
    assert [n.body for n in detail.notes] == ["Resident will send a photo."]
    assert [a.filename for a in detail.attachments] == ["pothole.png", "photo.jpg"]
    assert [h.action for h in detail.history] == ["created", "acknowledged", "note", "attachment", "attachment"]


# --- queries and reports -----------------------------------------------------------------------------

def test_listing_filters_and_pages(cases: CaseStore, clock: Clock) -> None:
    refs = []
    for i, code in enumerate(["pothole", "noise", "pothole", "missed-garbage"]):
        clock.now += timedelta(hours=1)
        attrs = {"pothole": {}, "noise": {"source": ["residence"]}, "missed-garbage": {"stream": ["garbage"]}}[code]
        refs.append(cases.create(CaseDraft(code, "web" if i == 3 else "voice", location=Location(address=f"{i} Elm"),
                                           attributes=attrs), ALICE).reference)
    cases.change_status(refs[0], "in_progress", ALICE)
    found, total = cases.search(CaseQuery(service_codes=("pothole",)))
    assert total == 2 and [c.reference for c in found] == [refs[2], refs[0]]
    assert [c.reference for c in cases.search(CaseQuery(statuses=("in_progress",)))[0]] == [refs[0]]
    assert [c.reference for c in cases.search(CaseQuery(department="bylaw"))[0]] == [refs[1]]
    assert [c.reference for c in cases.search(CaseQuery(channel="web"))[0]] == [refs[3]]
    page, total = cases.search(CaseQuery(), limit=3, offset=3)
    assert total == 4 and [c.reference for c in page] == [refs[0]]
    since = cases.search(CaseQuery(requested_from=clock.now - timedelta(minutes=90)))[0]
    assert [c.reference for c in since] == [refs[3], refs[2]]
    assert cases.search(CaseQuery(overdue=True))[1] == 0
    clock.now += timedelta(days=10)  # the garbage and noise targets (2 days) and the potholes' (5) have passed
    assert cases.search(CaseQuery(overdue=True))[1] == 4
    assert [c.reference for c in cases.search(CaseQuery(references=(refs[1].lower(), "nonsense")))[0]] == [refs[1]]


def test_ageing_report_by_department_and_type(cases: CaseStore, clock: Clock) -> None:
    monday = clock.now
    old = cases.create(pothole(), ALICE)                               # Monday November 23
    clock.now = monday + timedelta(days=3)                             # Thursday
    cases.create(pothole(), ALICE)
    cases.create(CaseDraft("noise", "voice", location=Location(address="9 Pine"),
                           attributes={"source": ["construction"]}), ALICE)
    done = cases.create(CaseDraft("noise", "voice", location=Location(address="9 Pine"),
                                  attributes={"source": ["construction"]}), ALICE)
    for status in ("pending_approval", "closed"):
        cases.change_status(done.reference, status, SAM)
    cases.change_status(old.reference, "in_progress", ALICE)
    now = datetime(2026, 12, 8, 15, 0, tzinfo=timezone.utc)            # Tuesday December 8
    rows = {(r.department, r.service_code): r for r in cases.ageing(now=now)}
    assert set(rows) == {("roads", "pothole"), ("bylaw", "noise")}   # closed cases are not ageing
    potholes = rows[("roads", "pothole")]
    assert (potholes.open, potholes.department_name, potholes.service_name) == (2, "Roads", "Pothole")
    assert potholes.by_status == {"new": 0, "acknowledged": 1, "in_progress": 1, "pending_approval": 0}
    assert potholes.oldest_days == 11 and potholes.mean_days == 9.5   # 11 and 8 business days
    assert potholes.buckets == {"0-2": 0, "3-5": 0, "6-10": 1, "11-20": 1, "21+": 0}
    assert potholes.overdue == 2                                       # due Nov 30 and Dec 3
    noise = rows[("bylaw", "noise")]
    assert (noise.open, noise.overdue, noise.oldest_days) == (1, 1, 8)
    assert [r.service_code for r in cases.ageing(department="bylaw", now=now)] == ["noise"]


# --- the /api/v1 case API ----------------------------------------------------------------------------

class Desk:
    def __init__(self, client: TestClient):
        self.client = client
        self.tokens: dict[str, str] = {}

    def sign_in(self, user: str) -> None:
        r = self.client.post("/api/v1/auth/login", json={"username": user, "password": f"{user}-demo"})
        assert r.status_code == 200, r.text
        self.tokens[user] = r.json()["access_token"]

    def call(self, user: str | None, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.request(method, path, headers=headers, **kw)

    def ok(self, user: str, method: str, path: str, **kw: Any) -> Any:
        r = self.call(user, method, path, **kw)
        assert r.is_success, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()


@pytest.fixture
def desk(db_url: str, tmp_path: Path) -> Iterator[Desk]:
    shutil.copy(REPO / "config" / "switchboard.yaml", tmp_path / "switchboard.yaml")
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=db_url), load_file(tmp_path / "switchboard.yaml"))
    with TestClient(app) as client:
        d = Desk(client)
        for user in ("alice", "sam"):
            d.sign_in(user)
        yield d


def test_case_api_from_contact_to_approved_closing(desk: Desk, tmp_path: Path) -> None:
    # a call comes in; alice files a pothole for the caller from the contact in hand
    desk.ok("sam", "POST", "/api/v1/contacts",
            json={"id": "call-1", "queue": "roads", "channel": "voice", "attributes": {"ani": "+19055550188"}})
    created = desk.call("alice", "POST", "/api/v1/cases", json={
        "service_code": "pothole", "contact_id": "call-1",
        "resident": {"first_name": "Ann", "last_name": "Lee"},
        "description": "Deep hole in the right lane",
        "location": {"address": "12 Elm St", "lat": 43.9, "long": -78.85}, "attributes": {"size": "large"},
        "on_behalf_of": {"name": "Cllr. Jane Roe, Ward 3", "role": "councillor"}})
    assert created.status_code == 201, created.text
    case = created.json()
    ref = case["reference"]
    assert ref.startswith("SR-") and case["channel"] == "voice" and case["contact_id"] == "call-1"
    assert case["status"] == "acknowledged" and case["expected_response_date"] >= case["requested_at"][:10]
    assert case["on_behalf_of"] == {"name": "Cllr. Jane Roe, Ward 3", "role": "councillor"}

    # the caller's number came from the contact; the next call from it finds Ann and her open case
    found = desk.ok("alice", "GET", "/api/v1/residents", params={"phone": "905-555-0188"})
    assert found["total"] == 1 and found["items"][0]["name"] == "Ann Lee"
    assert [c["reference"] for c in found["items"][0]["open_cases"]] == [ref]

    # the contact came by phone: filing it as an e-mail is refused
    wrong = desk.call("alice", "POST", "/api/v1/cases", json={
        "service_code": "pothole", "contact_id": "call-1", "channel": "email", "location": {"address": "x"}})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "body.channel"
    # parking complaints are not taken by e-mail: a problem body that says so
    refused = desk.call("alice", "POST", "/api/v1/cases", json={
        "service_code": "parking", "channel": "email", "location": {"address": "14 Oak Ave"},
        "attributes": {"violation": "driveway"}})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/channel-not-allowed"
    assert "not taken by email" in refused.json()["detail"]
    bad = desk.call("alice", "POST", "/api/v1/cases", json={
        "service_code": "pothole", "channel": "voice", "location": {"lat": 95, "long": 200}})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"body.lat", "body.long"}
    assert desk.call("alice", "POST", "/api/v1/cases", json={
        "service_code": "pothole", "channel": "voice", "location": {"lat": "NaN", "long": 1}}).status_code == 422
    assert desk.call(None, "POST", "/api/v1/cases", json={"service_code": "pothole"}).status_code == 401
    assert desk.ok("alice", "GET", "/api/v1/cases")["total"] == 1  # nothing refused was stored

    # photo, note, and the lifecycle: alice may ask to close, only sam approves
    photo = desk.ok("alice", "POST", f"/api/v1/cases/{ref}/attachments",
                    files={"file": ("hole.png", PNG, "image/png")})
    got = desk.call("alice", "GET", photo["url"])
    assert got.status_code == 200 and got.content == PNG and got.headers["content-type"] == "image/png"
    assert list((tmp_path / "data" / "attachments" / ref).iterdir())
    not_photo = desk.call("alice", "POST", f"/api/v1/cases/{ref}/attachments",
                          files={"file": ("x.png", b"<script>", "image/png")})
    assert not_photo.status_code == 415 and not_photo.json()["type"] == "/problems/photo-rejected"
    desk.ok("alice", "POST", f"/api/v1/cases/{ref}/notes", json={"body": "Crew booked"})
    desk.ok("alice", "POST", f"/api/v1/cases/{ref}/status", json={"status": "in_progress"})
    desk.ok("alice", "POST", f"/api/v1/cases/{ref}/status", json={"status": "pending_approval", "note": "patched"})
    denied = desk.call("alice", "POST", f"/api/v1/cases/{ref}/status", json={"status": "closed"})
    assert denied.status_code == 403 and denied.json()["type"] == "/problems/supervisor-required"
    skip = desk.call("sam", "POST", f"/api/v1/cases/{ref}/status", json={"status": "acknowledged"})
    assert skip.status_code == 409 and skip.json()["type"] == "/problems/invalid-transition"
    closed = desk.ok("sam", "POST", f"/api/v1/cases/{ref}/status", json={"status": "closed", "note": "Repaired"})
    assert closed["status"] == "closed" and closed["closed_at"] is not None

    detail = desk.ok("alice", "GET", f"/api/v1/cases/{ref.lower()}")
    assert detail["resident"]["phones"] == ["+19055550188"]
    assert [n["body"] for n in detail["notes"]] == ["Crew booked"]
    assert [a["filename"] for a in detail["attachments"]] == ["hole.png"]
    assert [(h["action"], h["actor"], h["to_status"]) for h in detail["history"]] == [
        ("created", "alice", "new"), ("acknowledged", "alice", "acknowledged"), ("attachment", "alice", None),
        ("note", "alice", None), ("status", "alice", "in_progress"), ("status", "alice", "pending_approval"),
        ("status", "sam", "closed")]
    assert desk.call("alice", "GET", "/api/v1/cases/SR-1999-000001").status_code == 404

    # lists, residents and the ageing report
    assert desk.ok("alice", "GET", "/api/v1/cases", params={"status": "open"})["total"] == 0
    assert desk.ok("alice", "GET", "/api/v1/cases", params={"status": "closed", "department": "roads"})["total"] == 1
    rid = detail["resident"]["id"]
    assert [c["reference"] for c in desk.ok("alice", "GET", f"/api/v1/residents/{rid}")["cases"]] == [ref]
    new_resident = desk.ok("alice", "POST", "/api/v1/residents", json={"first_name": "Bo", "emails": ["bo@x.ca"]})
    assert new_resident["emails"] == ["bo@x.ca"]
    assert desk.call("alice", "GET", "/api/v1/residents", params={"phone": "abc"}).status_code == 422
    desk.ok("alice", "POST", "/api/v1/cases", json={
        "service_code": "noise", "channel": "chat", "resident_id": new_resident["id"],
        "location": {"address": "3 Birch"}, "attributes": {"source": "animal"}})
    assert desk.call("alice", "GET", "/api/v1/cases/ageing").status_code == 403
    report = desk.ok("sam", "GET", "/api/v1/cases/ageing")
    assert [(r["department_name"], r["service_code"], r["open"]) for r in report["rows"]] == [("By-law", "noise", 1)]
    assert report["departments"] == {"bylaw": {"open": 1, "overdue": 0}}


def test_numbers_past_the_database_range_and_an_empty_resident_are_clear_refusals(desk: Desk, store: Store) -> None:
    """Found by fuzzing the OpenAPI (schemathesis): an id past BIGINT overflowed the driver (a 500)."""
    before = table_counts(store)
    too_big = 2**63  # one past the largest BIGINT
    for path, param in ((f"/api/v1/residents/{too_big}", "path.resident_id"),
                        (f"/api/v1/cases/SR-2026-000001/attachments/{too_big}", "path.attachment_id"),
                        ("/api/v1/residents/0", "path.resident_id")):
        r = desk.call("alice", "GET", path)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
        assert [e["field"] for e in r.json()["errors"]] == [param]
    r = desk.call("alice", "GET", "/api/v1/cases", params={"offset": too_big})
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["query.offset"]
    # the largest id is a well-formed one that names nobody
    assert desk.call("alice", "GET", f"/api/v1/residents/{too_big - 1}").status_code == 404
    assert desk.ok("alice", "GET", "/api/v1/cases", params={"offset": too_big - 1})["items"] == []

    # a resident with nothing to find them by: the problem is the whole body, and says so plainly
    empty = desk.call("alice", "POST", "/api/v1/residents", json={})
    assert empty.status_code == 422, empty.text
    body = empty.json()
    assert body["detail"] == "give at least a name, a phone number or an e-mail address"
    assert body["errors"] == [{"field": "body", "message": body["detail"]}]
    assert table_counts(store) == before
