"""The builtin connector over the real case store (SQLite and PostgreSQL), and `make_connector`'s choice of
connector from the settings, with a clear start-up error for every missing or malformed CRM setting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from testsupport import fresh_schema

from cti.business_days import BusinessCalendar
from cti.cases import Actor, CaseDraft, CaseStore, Location, ResidentDraft
from cti.catalogue import Catalogue
from cti.connectors import CrmConfigError, check_settings, make_connector
from cti.connectors.base import CaseInput, CaseUpdate, CrmRejected
from cti.connectors.builtin import BuiltinConnector
from cti.connectors.dynamics import DynamicsConnector
from cti.connectors.guard import BreakerState, GuardedConnector
from cti.connectors.webhook import WebhookConnector
from engine.settings import Settings
from engine.store.store import Store

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
REPO = Path(__file__).resolve().parents[2]
SAM = Actor("sam", "user", "supervisor")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=("sqlite", "postgresql"))
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'switchboard.db'}"
        return
    with fresh_schema(request.getfixturevalue("pg_server_url"), prefix="sbconn") as url:
        yield url


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[CaseStore]:
    s = Store(db_url)
    s.migrate()
    monday_10_toronto = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    try:
        yield CaseStore(s.db, Catalogue.load(REPO / "config" / "services.yaml"),
                        BusinessCalendar("CA-ON", day_ends=datetime(2000, 1, 1, 18).time()),
                        attachments_dir=tmp_path / "attachments", clock=lambda: monday_10_toronto)
    finally:
        s.close()


def file_pothole(store: CaseStore, resident_id: int | None = None, **resident: str) -> str:
    draft = CaseDraft(service_code="pothole", channel="voice", description="deep hole",
                      location=Location(address="12 Elm St, Lakeview"), resident_id=resident_id,
                      resident=ResidentDraft(**resident) if resident else None)  # type: ignore[arg-type]
    return store.create(draft, SAM).reference


async def test_lookup_and_open_cases(store: CaseStore) -> None:
    crm = BuiltinConnector(store)
    ann = store.create_resident(ResidentDraft(first_name="Ann", last_name="Lee", phones=("905-555-0101",),
                                              emails=("Ann@Example.ca",)))
    first = file_pothole(store, ann.id)
    second = file_pothole(store, ann.id)

    for query in ({"phone": "(905) 555-0101"}, {"phone": "+19055550101"}, {"email": "ann@example.ca"},
                  {"phone": "+19055550101", "email": "ann@example.ca"}):
        found = await crm.lookup(**query)
        assert [(p.id, p.name, p.phones, p.emails) for p in found] == [
            (str(ann.id), "Ann Lee", ("+19055550101",), ("ann@example.ca",))], query
    assert await crm.lookup(phone="anonymous") == []
    assert await crm.lookup(phone="+19055550199") == []
    assert await crm.lookup() == []

    cases = await crm.open_cases(str(ann.id))
    assert {c.id for c in cases} == {first, second} and all(c.status == "acknowledged" for c in cases)
    assert cases[0].title == "Pothole" and cases[0].department == "Roads" and cases[0].url == f"/api/v1/cases/{cases[0].id}"
    assert len(await crm.open_cases(str(ann.id), limit=1)) == 1
    with pytest.raises(CrmRejected, match="not a resident id"):
        await crm.open_cases("6f1c0a3e-0000-4000-8000-000000000001")


async def test_create_case_for_a_new_caller_and_refusals(store: CaseStore) -> None:
    crm = BuiltinConnector(store)
    case = await crm.create_case(CaseInput(service_code="pothole", description="hole by the curb",
                                           phone="905-555-0177", first_name="New", last_name="Caller",
                                           location="12 Elm St, Lakeview", channel="callback", filed_by="alice"))
    assert case.reference.startswith("SR-2026-") and case.status == "acknowledged"
    people = await crm.lookup(phone="9055550177")
    assert [p.name for p in people] == ["New Caller"]
    assert [c.id for c in await crm.open_cases(people[0].id)] == [case.id]

    with pytest.raises(CrmRejected, match="unknown service code 'graffiti'"):
        await crm.create_case(CaseInput(service_code="graffiti", description="tag on a wall", location="1 Main St"))
    with pytest.raises(CrmRejected, match="email"):  # parking complaints are not taken by email
        await crm.create_case(CaseInput(service_code="parking", description="blocked", channel="email",
                                        location="1 Main St"))


async def test_update_case_and_nothing_half_written(store: CaseStore) -> None:
    crm = BuiltinConnector(store)
    ref = file_pothole(store, first_name="Ann", last_name="Lee", phones=("9055550101",))  # type: ignore[arg-type]

    updated = await crm.update_case(ref, CaseUpdate(status="in_progress", note="Crew booked", filed_by="alice"))
    assert updated.status == "in_progress"
    assert [n.body for n in store.detail(ref).notes] == ["Crew booked"]

    with pytest.raises(CrmRejected, match="cannot move to closed"):
        await crm.update_case(ref, CaseUpdate(status="closed", note="should not be kept", filed_by="alice"))
    assert [n.body for n in store.detail(ref).notes] == ["Crew booked"]  # the refused move left no note
    with pytest.raises(CrmRejected, match="at most"):
        await crm.update_case(ref, CaseUpdate(note="x" * 10_001))
    with pytest.raises(CrmRejected, match="SR-2026-999999"):
        await crm.update_case("SR-2026-999999", CaseUpdate(note="hello"))
    assert store.get(ref) is not None and store.get(ref).status == "in_progress"  # type: ignore[union-attr]


# ---- make_connector -----------------------------------------------------------------------------------------

async def test_make_connector_builtin_by_default_guarded(store: CaseStore) -> None:
    guard = make_connector(Settings(crm_timeout_s=0.5), store)
    assert isinstance(guard, GuardedConnector) and isinstance(guard.inner, BuiltinConnector)
    assert guard.name == "builtin" and guard.timeout_s == 0.5 and guard.state is BreakerState.CLOSED
    assert await guard.lookup(phone="+19055550101") == []
    with pytest.raises(CrmConfigError, match="case store"):
        make_connector(Settings(), None)


async def test_make_connector_dynamics_and_webhook_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"CRM": "dynamics", "DYNAMICS_ORG_URL": "https://lakeview.crm3.dynamics.com/",
                        "DYNAMICS_TENANT": "lakeview.onmicrosoft.com", "DYNAMICS_CLIENT_ID": "app-1",
                        "DYNAMICS_CLIENT_SECRET": "s3cret", "CRM_FAILURES_TO_OPEN": "2"}.items():
        monkeypatch.setenv(f"SWITCHBOARD_{name}", value)
    settings = Settings()
    assert "s3cret" not in repr(settings)  # secrets are not printed with the settings
    guard = make_connector(settings, None)
    dyn = guard.inner
    assert isinstance(dyn, DynamicsConnector) and guard.breaker.failures_to_open == 2
    assert dyn.api == "https://lakeview.crm3.dynamics.com/api/data/v9.2"
    assert dyn.token_url == "https://login.microsoftonline.com/lakeview.onmicrosoft.com/oauth2/v2.0/token"
    await guard.close()

    web = make_connector(Settings(crm="webhook", webhook_url="https://crm.lakeview.ca/switchboard",
                                  webhook_secret="0123456789abcdef"), None)
    assert isinstance(web.inner, WebhookConnector) and web.name == "webhook"
    await web.close()


@pytest.mark.parametrize("values, words", [
    ({"crm": "dynamics"}, "SWITCHBOARD_DYNAMICS_ORG_URL is required when SWITCHBOARD_CRM=dynamics"),
    ({"crm": "dynamics", "dynamics_org_url": "lakeview.crm3.dynamics.com"},
     "SWITCHBOARD_DYNAMICS_ORG_URL: 'lakeview.crm3.dynamics.com' is not"),
    ({"crm": "dynamics", "dynamics_org_url": "https://x.crm.dynamics.com", "dynamics_tenant": "t",
      "dynamics_client_id": "c"}, "SWITCHBOARD_DYNAMICS_CLIENT_SECRET is required"),
    ({"crm": "dynamics", "dynamics_org_url": "https://x.crm.dynamics.com", "dynamics_tenant": "t",
      "dynamics_client_id": "c", "dynamics_client_secret": "s", "dynamics_token_url": "ftp://x"},
     "SWITCHBOARD_DYNAMICS_TOKEN_URL"),
    ({"crm": "webhook"}, "SWITCHBOARD_WEBHOOK_URL is required when SWITCHBOARD_CRM=webhook"),
    ({"crm": "webhook", "webhook_url": "https://crm.example"}, "SWITCHBOARD_WEBHOOK_SECRET is required"),
    ({"crm": "webhook", "webhook_url": "https://crm.example", "webhook_secret": "short"}, "at least 16"),
])
def test_missing_or_bad_crm_settings_name_the_setting(values: dict[str, str], words: str) -> None:
    settings = Settings(**values)
    for check in (check_settings, lambda s: make_connector(s, None)):
        with pytest.raises(CrmConfigError) as caught:
            check(settings)
        assert words in str(caught.value)


def test_an_unknown_crm_is_refused_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CRM", "salesforce")
    with pytest.raises(ValueError, match="crm"):
        Settings()


def test_breaker_state_on_metrics(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from engine.app import create_app
    from engine.configfile import load_file

    app = create_app(Settings(data_dir=tmp_path / "var"), load_file(REPO / "config" / "switchboard.yaml"))
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert 'switchboard_crm_circuit_state{crm="builtin"} 0.0' in text
    assert 'switchboard_crm_calls_total{crm="builtin",outcome="shed"} 0.0' in text
