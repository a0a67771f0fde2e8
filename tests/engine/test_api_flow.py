"""A working day through the HTTP API: agents sign in, contacts of every channel arrive and are handled,
lists and statistics read back, users are managed and the site file is reloaded while running."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from engine.app import create_app
from engine.bus import MemoryBus
from engine.configfile import load_file
from engine.core import Core
from engine.settings import Settings
from engine.store.store import Store

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class Desk:
    """Who is signed in, and their calls."""

    def __init__(self, app: FastAPI, client: TestClient, site_file: Path):
        self.app, self.client, self.site_file = app, client, site_file
        self.tokens: dict[str, str] = {}

    def sign_in(self, user: str, password: str | None = None) -> dict[str, Any]:
        r = self.client.post("/api/v1/auth/login", json={"username": user, "password": password or f"{user}-demo"})
        assert r.status_code == 200, r.text
        self.tokens[user] = r.json()["access_token"]
        return dict(r.json())

    def call(self, user: str, method: str, path: str, **kw: Any) -> httpx.Response:
        r: httpx.Response = self.client.request(method, path, headers={"Authorization": f"Bearer {self.tokens[user]}"},
                                                **kw)
        return r

    def on_loop(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the engine's event loop: no command or timer runs meanwhile."""
        assert self.client.portal is not None
        return self.client.portal.call(fn)

    def ok(self, user: str, method: str, path: str, **kw: Any) -> Any:
        r = self.call(user, method, path, **kw)
        assert r.is_success, f"{user} {method} {path}: {r.status_code} {r.text}"
        return r.json()


@contextlib.contextmanager
def open_desk(tmp: Path) -> Iterator[Desk]:
    site_file = tmp / "switchboard.yaml"
    shutil.copy(REPO / "config" / "switchboard.yaml", site_file)
    app = create_app(Settings(data_dir=tmp / "data"), load_file(site_file))
    with TestClient(app) as client:
        d = Desk(app, client, site_file)
        for user in ("sam", "admin", "alice", "bashir", "dana", "fatima"):
            d.sign_in(user)
        yield d


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with open_desk(tmp_path_factory.mktemp("flow")) as d:
        yield d


def events_of(contact: dict[str, Any]) -> list[str]:
    return [h["event"] for h in contact["history"]]


def test_a_day_at_the_desk(desk: Desk) -> None:
    # alice signs in at a softphone, then goes ready; bashir signs in ready at his desk phone
    me = desk.ok("alice", "POST", "/api/v1/agents/alice/login", json={"station": "sip:alice-soft@10.0.0.5:5062"})
    assert (me["presence"], me["station"]) == ("not_ready", "sip:alice-soft@10.0.0.5:5062")
    assert desk.ok("alice", "POST", "/api/v1/agents/alice/state", json={"state": "ready"})["presence"] == "ready"
    bashir = desk.ok("bashir", "POST", "/api/v1/agents/bashir/login", json={"ready": True})
    assert (bashir["presence"], bashir["station"]) == ("ready", "sip:bashir@127.0.0.1:5072")

    # the supervisor's channels deliver contacts; each goes to the only ready agent with the skill
    def arrive(cid: str, queue: str, channel: str, **extra: Any) -> dict[str, Any]:
        c = desk.ok("sam", "POST", "/api/v1/contacts", json={"id": cid, "queue": queue, "channel": channel, **extra})
        assert (c["id"], c["queue"], c["channel"]) == (cid, queue, channel)
        return dict(c)

    # (a phone call blocks other channels for its agent, so it comes last: nothing else is held back)
    chat = arrive("c-1", "roads", "chat")
    email = arrive("e-1", "bylaw", "email", attributes={"subject": "Noise on Elm St"})
    sms = arrive("s-1", "general", "sms")
    voice = arrive("v-1", "parking", "voice", attributes={"ani": "+19055550123"}, priority=5)
    waiting = arrive("w-1", "taxes", "work_item")  # chen and emile are not signed in: it waits
    for c, agent in ((voice, "alice"), (chat, "bashir"), (email, "alice"), (sms, "alice")):
        assert (c["state"], c["agent"]) == ("offered", agent), c
    assert (waiting["state"], waiting["agent"]) == ("queued", None)
    line = desk.ok("sam", "GET", "/api/v1/contacts/w-1")
    assert line["position"] == 1 and line["expected_wait_s"] > 0  # nobody served yet: handle time / agents
    assert desk.ok("alice", "GET", "/api/v1/agents/alice")["offers"] == ["e-1", "s-1", "v-1"]

    # the call: answer, hold, resume, hand to bashir on general, who sends it on to by-law
    assert desk.ok("alice", "POST", "/api/v1/contacts/v-1/accept")["state"] == "connected"
    assert desk.ok("alice", "POST", "/api/v1/contacts/v-1/hold")["state"] == "held"
    assert desk.ok("alice", "POST", "/api/v1/contacts/v-1/resume")["state"] == "connected"
    moved = desk.ok("alice", "POST", "/api/v1/contacts/v-1/transfer",
                    json={"to_queue": "general", "to_agent": "bashir", "note": "parking ticket dispute"})
    assert (moved["queue"], moved["state"], moved["agent"]) == ("general", "offered", "bashir")
    # the caller is no longer alice's to act on (a conflict: it was hers), but she may still read it
    assert desk.call("alice", "POST", "/api/v1/contacts/v-1/hold").status_code == 409
    assert desk.call("dana", "POST", "/api/v1/contacts/v-1/hold").status_code == 403  # never was hers
    assert desk.ok("alice", "GET", "/api/v1/contacts/v-1")["agent"] == "bashir"
    desk.ok("bashir", "POST", "/api/v1/contacts/v-1/accept")
    moved = desk.ok("bashir", "POST", "/api/v1/contacts/v-1/transfer", json={"to_queue": "bylaw"})
    assert (moved["queue"], moved["state"], moved["agent"]) == ("bylaw", "offered", "alice")
    desk.ok("alice", "POST", "/api/v1/contacts/v-1/accept")
    done = desk.ok("alice", "POST", "/api/v1/contacts/v-1/complete", json={"code": "escalated"})
    assert (done["state"], done["wrap_up_code"], done["agent"]) == ("completed", "escalated", None)
    assert done["attributes"] == {"ani": "+19055550123"} and done["priority"] == 5
    assert events_of(done) == ["queued", "answered", "transferred", "answered", "transferred", "answered",
                               "ended", "completed"]
    hops = [(h["from_agent"], h["to_queue"], h["to_agent"], h["note"]) for h in done["history"]
            if h["event"] == "transferred"]
    assert hops == [("alice", "general", "bashir", "parking ticket dispute"), ("bashir", "bylaw", None, "")]
    assert [h["agent"] for h in done["history"] if h["event"] == "answered"] == ["alice", "bashir", "alice"]

    # the chat: answer, end, wrap up with a code of its queue
    desk.ok("bashir", "POST", "/api/v1/contacts/c-1/accept")
    assert desk.ok("bashir", "POST", "/api/v1/contacts/c-1/end")["state"] == "wrap_up"
    wrapped = desk.ok("bashir", "POST", "/api/v1/contacts/c-1/wrap-up", json={"code": "emergency-dispatched"})
    assert (wrapped["state"], wrapped["wrap_up_code"]) == ("completed", "emergency-dispatched")

    # the e-mail is declined once, comes back to the same (only) qualified agent after a reject, and is done
    bounced = desk.ok("alice", "POST", "/api/v1/contacts/e-1/reject", json={"reason": "rejected"})
    assert bounced["state"] == "queued" and events_of(bounced)[-1] == "offer_missed"
    desk.ok("sam", "POST", "/api/v1/contacts/e-1/transfer", json={"to_queue": "general", "to_agent": "alice"})
    desk.ok("alice", "POST", "/api/v1/contacts/e-1/accept")
    desk.ok("alice", "POST", "/api/v1/contacts/e-1/complete", json={"code": "sr-created"})

    # the text message
    desk.ok("alice", "POST", "/api/v1/contacts/s-1/accept")
    desk.ok("alice", "POST", "/api/v1/contacts/s-1/complete", json={"code": "info-given"})

    me = desk.ok("alice", "GET", "/api/v1/agents/alice")
    assert (me["offers"], me["contacts"], me["handled_today"]) == ([], [], 4)  # answers: v-1 twice, e-1, s-1

    # lists: filters and pagination
    everything = desk.ok("sam", "GET", "/api/v1/contacts")
    assert everything["total"] == 5 and everything["next_offset"] is None
    assert [c["id"] for c in everything["items"]] == ["c-1", "e-1", "s-1", "v-1", "w-1"]  # by arrival
    completed = desk.ok("sam", "GET", "/api/v1/contacts", params={"state": "completed"})
    assert sorted(c["id"] for c in completed["items"]) == ["c-1", "e-1", "s-1", "v-1"]
    assert [c["id"] for c in desk.ok("sam", "GET", "/api/v1/contacts", params={"channel": "voice"})["items"]] == ["v-1"]
    assert [c["id"] for c in desk.ok("sam", "GET", "/api/v1/contacts", params={"queue": "taxes",
                                                                                "state": "queued"})["items"]] == ["w-1"]
    seen, offset = [], 0
    while offset is not None:
        page = desk.ok("sam", "GET", "/api/v1/contacts", params={"limit": 2, "offset": offset})
        assert page["total"] == 5 and page["limit"] == 2 and len(page["items"]) <= 2
        seen += [c["id"] for c in page["items"]]
        offset = page["next_offset"]
    assert seen == ["c-1", "e-1", "s-1", "v-1", "w-1"]
    assert desk.ok("sam", "GET", "/api/v1/contacts", params={"offset": 50})["items"] == []

    # agents see their own contacts only, and only themselves in the agent list
    mine = desk.ok("alice", "GET", "/api/v1/contacts")
    assert mine["total"] == 0  # nothing held right now
    assert [a["id"] for a in desk.ok("alice", "GET", "/api/v1/agents")["items"]] == ["alice"]
    crew = desk.ok("sam", "GET", "/api/v1/agents")
    assert [a["id"] for a in crew["items"]] == ["alice", "bashir", "chen", "dana", "emile", "fatima"]
    assert {a["id"]: a["presence"] for a in crew["items"]}["chen"] == "logged_out"

    # live and interval statistics
    live = desk.ok("alice", "GET", "/api/v1/queues/taxes/stats")
    assert live["queue"] == "taxes" and live["waiting"] == 1 and live["oldest_wait_s"] >= 0
    assert len(live["expected_wait_s"]) == 1 and live["as_of"] > 0
    intervals = desk.ok("sam", "GET", "/api/v1/queues/bylaw/intervals")
    assert intervals["total"] >= 1
    now_row = intervals["items"][0]
    # e-1 arrived there and was moved to general; v-1 was moved in and handled there
    assert (now_row["queue"], now_row["offered"], now_row["handled"], now_row["transfers"]) == ("bylaw", 1, 1, 1)
    assert now_row["interval_start"] % 900 == 0
    assert 0 < now_row["occupancy"] <= 1  # alice and bashir are staffed right now, and were busy
    parking = desk.ok("sam", "GET", "/api/v1/queues/parking/intervals")["items"][0]
    assert (parking["offered"], parking["answered"], parking["transfers"]) == (1, 1, 1)
    queues = desk.ok("bashir", "GET", "/api/v1/queues")
    assert {q["id"] for q in queues["items"]} == {"general", "bylaw", "roads", "waste", "taxes", "parking"}
    assert {q["id"]: q["waiting"] for q in queues["items"]}["taxes"] == 1

    # the day ends: the waiting item is withdrawn and both sign out
    desk.ok("sam", "POST", "/api/v1/contacts/w-1/abandon")
    assert desk.ok("alice", "POST", "/api/v1/agents/alice/logout")["presence"] == "logged_out"
    assert desk.ok("bashir", "POST", "/api/v1/agents/bashir/logout")["presence"] == "logged_out"


def test_callback_keeps_its_place(desk: Desk) -> None:
    first = desk.ok("sam", "POST", "/api/v1/contacts", json={"id": "cb-1", "queue": "taxes", "channel": "voice"})
    desk.ok("sam", "POST", "/api/v1/contacts", json={"id": "cb-2", "queue": "taxes", "channel": "voice"})
    kept = desk.ok("sam", "POST", "/api/v1/contacts/cb-1/callback")
    assert (kept["channel"], kept["enqueued_at"]) == ("callback", first["enqueued_at"])
    assert desk.ok("sam", "GET", "/api/v1/contacts/cb-1")["position"] == 1
    for cid in ("cb-1", "cb-2"):
        desk.ok("sam", "POST", f"/api/v1/contacts/{cid}/abandon")


def test_users_are_managed_by_the_admin(desk: Desk) -> None:
    made = desk.call("admin", "POST", "/api/v1/users",
                     json={"username": "gina", "password": "gina-password", "role": "agent", "agent": "chen"})
    assert made.status_code == 201, made.text
    assert made.json() == {"username": "gina", "role": "agent", "agent": "chen", "disabled": False}
    again = desk.call("admin", "POST", "/api/v1/users",
                      json={"username": "gina", "password": "other-password", "role": "admin"})
    assert again.status_code == 409 and again.json()["type"] == "/problems/duplicate-user"

    signed = desk.sign_in("gina", "gina-password")
    assert (signed["role"], signed["agent"]) == ("agent", "chen")
    assert desk.ok("gina", "GET", "/api/v1/agents/chen")["id"] == "chen"
    assert desk.call("gina", "GET", "/api/v1/agents/dana").status_code == 403
    names = [u["username"] for u in desk.ok("admin", "GET", "/api/v1/users", params={"limit": 500})["items"]]
    assert "gina" in names and names == sorted(names)
    assert desk.ok("admin", "GET", "/api/v1/users/gina")["agent"] == "chen"

    assert desk.ok("admin", "POST", "/api/v1/users/gina/disable")["disabled"] is True
    r = desk.client.post("/api/v1/auth/login", json={"username": "gina", "password": "gina-password"})
    assert r.status_code == 401


def test_reload_applies_a_good_file_and_refuses_a_bad_one(desk: Desk) -> None:
    site = yaml.safe_load(desk.site_file.read_text())
    site["queues"]["recreation"] = {"name": "Parks and recreation", "skills": {"general": 1},
                                    "wrap_up_codes": ["booked", "info-given"]}
    desk.site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    done = desk.ok("admin", "POST", "/api/v1/admin/reload")
    assert (done["status"], done["queues"]) == ("reloaded", 7)
    assert desk.ok("sam", "GET", "/api/v1/queues/recreation")["wrap_up_codes"] == ["booked", "info-given"]
    c = desk.ok("sam", "POST", "/api/v1/contacts", json={"id": "rec-1", "queue": "recreation"})
    assert c["state"] == "queued"

    # a bad file: every problem named with file, line and field; the running configuration stays
    journal = desk.app.state.store.journal.count()
    good_text = desk.site_file.read_text()
    bad = good_text.replace("strategy: best_skill", "strategy: fastest_finger").replace(
        "sl_threshold_s: 60", "sl_threshold_s: -60")
    assert bad != good_text
    desk.site_file.write_text(bad)
    r = desk.call("admin", "POST", "/api/v1/admin/reload")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    problem = r.json()
    assert problem["type"] == "/problems/invalid-config" and problem["detail"]
    fields = {e["field"]: e for e in problem["errors"]}
    assert {"queues.roads.strategy", "queues.taxes.sl_threshold_s"} <= set(fields), problem["errors"]
    lines = bad.splitlines()
    for e in problem["errors"]:
        assert e["file"] == str(desk.site_file) and e["message"]
    assert "fastest_finger" in lines[fields["queues.roads.strategy"]["line"] - 1]
    assert "-60" in lines[fields["queues.taxes.sl_threshold_s"]["line"] - 1]
    assert desk.app.state.store.journal.count() == journal
    assert desk.ok("sam", "GET", "/api/v1/queues/roads")["strategy"] == "best_skill"
    assert desk.ok("sam", "GET", "/api/v1/queues/recreation")["id"] == "recreation"

    # a good file that would strand a waiting contact (its queue is gone) is refused too
    site = yaml.safe_load(good_text)
    del site["queues"]["recreation"]
    desk.site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    r = desk.call("admin", "POST", "/api/v1/admin/reload")
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["queues.recreation"]
    assert desk.ok("sam", "GET", "/api/v1/contacts/rec-1")["queue"] == "recreation"
    assert desk.app.state.store.journal.count() == journal
    # with the contact gone it may go
    desk.ok("sam", "POST", "/api/v1/contacts/rec-1/abandon")
    assert desk.ok("admin", "POST", "/api/v1/admin/reload")["queues"] == 6
    assert desk.call("sam", "GET", "/api/v1/queues/recreation").status_code == 404


@pytest.fixture
def quiet_desk(tmp_path: Path) -> Iterator[Desk]:
    """A fresh engine whose periodic interval saver is stopped: it books running agent time into the live
    router (`Router.settle`) without an event, so on its schedule live and rebuilt would differ."""
    with open_desk(tmp_path) as d:
        def stop_saver() -> None:
            for task in asyncio.all_tasks():
                if task.get_name() == "intervals":
                    task.cancel()
        d.on_loop(stop_saver)
        yield d


def test_a_random_day_never_breaks_the_server_and_the_journal_tells_it_all(quiet_desk: Desk) -> None:
    """Hundreds of commands from the right and the wrong people in any order: no 5xx, reads never fail,
    and a router rebuilt from the store equals the live one (reads included: they must change nothing)."""
    desk = quiet_desk
    rnd = random.Random(4)
    agents = ["alice", "bashir", "dana", "fatima"]
    queues = sorted(desk.app.state.core.router.center.queues)
    ids: list[str] = []
    seen: dict[int, int] = {}
    for step in range(500):
        user = rnd.choice(["sam", *agents])
        roll = rnd.random()
        if roll < 0.15:
            ids.append(f"walk-{step}")
            r = desk.call("sam", "POST", "/api/v1/contacts", json={
                "id": ids[-1], "queue": rnd.choice(queues), "priority": rnd.randint(-5, 5),
                "channel": rnd.choice(["voice", "chat", "email", "sms", "work_item", "callback"])})
        elif roll < 0.35 or not ids:
            agent = user if user in agents and rnd.random() < 0.8 else rnd.choice(agents)
            action = rnd.choice(["login", "logout", "state", "state"])
            body = {"login": {"ready": rnd.random() < 0.7}, "logout": None,
                    "state": rnd.choice([{"state": "ready"}, {"state": "not_ready", "reason": "break"}])}[action]
            r = desk.call(user, "POST", f"/api/v1/agents/{agent}/{action}", json=body)
        else:
            cid = rnd.choice(ids[-15:])
            holder = desk.app.state.core.router.contacts[cid].agent
            if holder is not None and rnd.random() < 0.8:
                user = holder  # mostly the one who has it, so the walk gets somewhere
            action = rnd.choice(["accept", "accept", "reject", "hold", "resume", "transfer", "end", "wrap-up",
                                 "complete", "complete", "abandon", "callback"])
            body = {"transfer": rnd.choice([{"to_queue": rnd.choice(queues)}, {"to_agent": rnd.choice(agents)},
                                            {"to_queue": "general", "to_agent": rnd.choice(agents)}]),
                    "wrap-up": rnd.choice([{"code": "resolved"}, {}]),
                    "complete": rnd.choice([{"code": "resolved"}, {"code": "sr-created"}, {}])}.get(action)
            r = desk.call(user, "POST", f"/api/v1/contacts/{cid}/{action}", json=body)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, r.text
        assert r.headers["content-type"] == ("application/json" if r.is_success else "application/problem+json")
        if step % 25 == 0:
            for path in ("/api/v1/contacts?limit=500", "/api/v1/agents", "/api/v1/queues/general/stats",
                         "/api/v1/queues/general/intervals", f"/api/v1/queues/{rnd.choice(queues)}"):
                assert desk.call("sam", "GET", path).status_code == 200, path
    assert seen.get(200, 0) > 50 and seen.get(201, 0) > 50 and seen.get(409, 0) > 0, seen

    def rebuilt_and_live() -> tuple[dict[str, Any], dict[str, Any]] | None:
        """On the event loop, so no command runs in between; None while a write is in flight."""
        core = desk.app.state.core
        if core.writer_busy():
            return None
        store = Store(desk.app.state.settings.effective_database_url())
        other = Core(core.center, store, MemoryBus())
        try:
            other.recover()
            return other.router.snapshot(), core.router.snapshot()
        finally:
            other.close()
            store.close()

    while (both := desk.on_loop(rebuilt_and_live)) is None:
        time.sleep(0.01)
    rebuilt, live = both
    assert rebuilt == live
