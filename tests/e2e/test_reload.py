"""Changing the site file under a running engine: POST /api/v1/admin/reload and SIGHUP.

Issue 4: "Config can be reloaded without a restart (POST /api/v1/admin/reload or SIGHUP); a bad reload is
refused and the running config stays." A reload is journaled as a ConfigReloaded marker, so after a
`kill -9` the engine replays the events before the marker under the old configuration and those after it
under the new one: waiting contacts come back in their queues, in their order, with their ages.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text
from testsupport import wait_for

if TYPE_CHECKING:
    from tests.e2e.conftest import EngineServer

pytestmark = pytest.mark.timeout(180)


# ----------------------------------------------------------------------------------------------
# helpers

def client(server: EngineServer, user: str) -> httpx.Client:
    token = server.login(user, f"{user}-pass")
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    return r.json()


def queues(c: httpx.Client) -> dict[str, dict[str, Any]]:
    return {q["id"]: q for q in ok(c.get("/api/v1/queues", params={"limit": 500}))["items"]}


def contacts(c: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    return list(ok(c.get("/api/v1/contacts", params={"limit": 500, **params}))["items"])


def write_site(server: EngineServer, config: dict[str, Any]) -> str:
    body = yaml.safe_dump(config, sort_keys=False)
    server.config.write_text(body)
    return body


def line_of(body: str, needle: str) -> int:
    """1-based number of the (only) line containing `needle`."""
    hits = [n for n, line in enumerate(body.splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def grown(site: dict[str, Any]) -> dict[str, Any]:
    """The site with a queue q3 added (round robin) and q1 switched to best skill."""
    new = yaml.safe_load(yaml.safe_dump(site))
    new["queues"]["q1"]["strategy"] = "best_skill"
    new["queues"]["q3"] = {"name": "Queue q3", "skills": {"general": 1}, "strategy": "round_robin",
                           "wrap_up_s": 0, "offer_timeout_s": 60}
    return new


def waiting_line(c: httpx.Client, queue: str) -> list[tuple[str, float, int]]:
    """(id, enqueued_at, position) of every queued contact in `queue`, in line order."""
    line = []
    for item in contacts(c, state="queued", queue=queue):
        view = ok(c.get(f"/api/v1/contacts/{item['id']}"))
        line.append((view["id"], view["enqueued_at"], view["position"]))
    return sorted(line, key=lambda x: x[2])


def journal_kinds(server: EngineServer) -> list[str]:
    url = server.database_url or f"sqlite:///{server.data_dir / 'switchboard.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [str(k) for (k,) in conn.execute(text("SELECT type FROM journal ORDER BY seq"))]
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------------------------

def test_reload_adds_a_queue_and_changes_a_strategy_without_a_restart(
        start_engine: Callable[..., EngineServer], make_site: Callable[..., dict[str, Any]]) -> None:
    site = make_site()
    server = start_engine(site)
    pid = server.pid
    with client(server, "admin") as admin, client(server, "sup") as sup:
        for n in range(3):
            ok(sup.post("/api/v1/contacts", json={"id": f"w{n}", "queue": "q1", "channel": "voice"}), 201)
        line = waiting_line(sup, "q1")
        assert [cid for cid, _, _ in line] == ["w0", "w1", "w2"]
        assert queues(sup)["q1"]["strategy"] == "longest_idle" and "q3" not in queues(sup)

        r = sup.post("/api/v1/admin/reload")
        assert r.status_code == 403, r.text  # administrators only

        write_site(server, grown(site))
        body = ok(admin.post("/api/v1/admin/reload"))
        assert body["status"] == "reloaded" and body["queues"] == 3, body
        now = queues(sup)
        assert now["q1"]["strategy"] == "best_skill", now["q1"]
        assert now["q3"]["strategy"] == "round_robin" and now["q3"]["waiting"] == 0, now["q3"]
        assert waiting_line(sup, "q1") == line, "the waiting contacts lost their place or age in a reload"
        ok(sup.post("/api/v1/contacts", json={"id": "new-q3", "queue": "q3", "channel": "voice"}), 201)
        assert queues(sup)["q3"]["waiting"] == 1

        # an agent who becomes ready now takes the oldest contact under the new configuration
        with client(server, "a1") as a1:
            ok(a1.post("/api/v1/agents/a1/login", json={"ready": True}))
        offered = [c for c in contacts(sup) if c["state"] == "offered"]
        assert [c["id"] for c in offered] == ["w0"], offered
    assert server.proc is not None and server.proc.poll() is None and server.pid == pid  # same process


def test_a_broken_file_is_refused_with_its_line_and_the_old_config_stays(
        start_engine: Callable[..., EngineServer], make_site: Callable[..., dict[str, Any]]) -> None:
    site = make_site()
    server = start_engine(site)
    with client(server, "admin") as admin, client(server, "sup") as sup:
        ok(sup.post("/api/v1/contacts", json={"id": "first", "queue": "q1", "channel": "voice"}), 201)
        before = queues(sup)
        markers = journal_kinds(server).count("ConfigReloaded")

        # a bad value: the problem names the file, the line and the field
        bad = grown(site)
        bad["queues"]["q3"]["strategy"] = "fastest_first"
        body = write_site(server, bad)
        r = admin.post("/api/v1/admin/reload")
        problem = ok(r, 422)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert problem["type"] == "/problems/invalid-config" and problem["status"] == 422, problem
        assert str(server.config) in problem["detail"], problem
        errors = problem["errors"]
        assert any(e["field"] == "queues.q3.strategy" and e["file"] == str(server.config)
                   and e["line"] == line_of(body, "fastest_first") and e["message"] for e in errors), errors
        assert queues(sup) == before

        # broken YAML: the line of the syntax error
        body = yaml.safe_dump(site, sort_keys=False).replace("  q2:\n", "  q2:\n    name: [unclosed\n", 1)
        server.config.write_text(body)
        problem = ok(admin.post("/api/v1/admin/reload"), 422)
        (error,) = problem["errors"]
        assert error["field"] == "(syntax)" and error["file"] == str(server.config), error
        assert error["line"] is not None and abs(error["line"] - line_of(body, "[unclosed")) <= 1, error

        # a file that is not there
        server.config.rename(server.config.with_suffix(".moved"))
        problem = ok(admin.post("/api/v1/admin/reload"), 422)
        assert problem["errors"][0]["field"] == "(file)", problem
        server.config.with_suffix(".moved").rename(server.config)

        # the running configuration is untouched and serves as before
        assert queues(sup) == before
        ok(sup.post("/api/v1/contacts", json={"id": "still-q2", "queue": "q2", "channel": "voice"}), 201)
        r = sup.post("/api/v1/contacts", json={"id": "no-q3", "queue": "q3", "channel": "voice"})
        assert r.status_code == 404, r.text

        # and a good file goes in afterwards
        write_site(server, grown(site))
        ok(admin.post("/api/v1/admin/reload"))
        assert set(queues(sup)) == {"q1", "q2", "q3"}
        assert journal_kinds(server).count("ConfigReloaded") == markers + 1  # refused ones left no trace


def test_removing_a_queue_that_has_waiting_contacts_is_refused(
        start_engine: Callable[..., EngineServer], make_site: Callable[..., dict[str, Any]]) -> None:
    site = make_site()
    server = start_engine(site)
    without_q2 = yaml.safe_load(yaml.safe_dump(site))
    del without_q2["queues"]["q2"]
    with client(server, "admin") as admin, client(server, "sup") as sup:
        ok(sup.post("/api/v1/contacts", json={"id": "waits-in-q2", "queue": "q2", "channel": "voice"}), 201)
        write_site(server, without_q2)
        problem = ok(admin.post("/api/v1/admin/reload"), 422)
        assert problem["type"] == "/problems/invalid-config", problem
        assert [(e["field"], e["file"]) for e in problem["errors"]] == [("queues.q2", str(server.config))], problem
        assert "live contacts" in problem["errors"][0]["message"]
        assert set(queues(sup)) == {"q1", "q2"} and queues(sup)["q2"]["waiting"] == 1
        assert ok(sup.get("/api/v1/contacts/waits-in-q2"))["position"] == 1

        # once the queue is empty the same file goes in
        ok(sup.post("/api/v1/contacts/waits-in-q2/abandon"))
        ok(admin.post("/api/v1/admin/reload"))
        assert set(queues(sup)) == {"q1"}
        assert ok(sup.get("/api/v1/contacts/waits-in-q2"))["state"] == "abandoned"


def test_sighup_reloads_and_a_bad_file_on_sighup_changes_nothing(
        start_engine: Callable[..., EngineServer], make_site: Callable[..., dict[str, Any]]) -> None:
    site = make_site()
    server = start_engine(site)
    with client(server, "sup") as sup:
        write_site(server, grown(site))
        os.kill(server.pid, signal.SIGHUP)
        now = wait_for(lambda: (q := queues(sup)) and "q3" in q and q, 10, "the SIGHUP reload")
        assert now["q1"]["strategy"] == "best_skill" and now["q3"]["strategy"] == "round_robin"

        bad = grown(site)
        bad["queues"]["q1"]["skills"] = {"no-such-skill": 1}
        del bad["queues"]["q3"]
        write_site(server, bad)
        os.kill(server.pid, signal.SIGHUP)
        wait_for(lambda: "config reload refused" in (server.log_path.read_text() if server.log_path else ""), 10,
                 "the engine to log the refused reload")
        assert server.proc is not None and server.proc.poll() is None, "SIGHUP with a bad file stopped the engine"
        assert queues(sup) == now
        assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200


def test_kill_9_after_reloads_replays_across_the_config_markers(
        start_engine: Callable[..., EngineServer], make_site: Callable[..., dict[str, Any]],
        database_url: str | None) -> None:
    site = make_site()
    server = start_engine(site, database_url)
    without_q2 = grown(site)
    del without_q2["queues"]["q2"]
    now = time.time()
    with client(server, "admin") as admin, client(server, "sup") as sup:
        # before the reload: contacts of different ages in q1, and one in q2 that is finished
        for n, age in enumerate((600, 300, 120, 30)):
            ok(sup.post("/api/v1/contacts", json={"id": f"old{n}", "queue": "q1", "channel": "voice",
                                                   "enqueued_at": now - age}), 201)
        ok(sup.post("/api/v1/contacts", json={"id": "gone-q2", "queue": "q2", "channel": "voice"}), 201)
        ok(sup.post("/api/v1/contacts/gone-q2/abandon"))

        # reload: q3 added, q1 strategy changed, q2 (no live contacts) removed
        write_site(server, without_q2)
        ok(admin.post("/api/v1/admin/reload"))
        # after it: contacts in the new queue and the changed one
        for n, age in enumerate((400, 10)):
            ok(sup.post("/api/v1/contacts", json={"id": f"new{n}", "queue": "q3", "channel": "voice",
                                                   "enqueued_at": now - age}), 201)
        ok(sup.post("/api/v1/contacts", json={"id": "new-q1", "queue": "q1", "channel": "voice",
                                               "enqueued_at": now - 200}), 201)
        before = {q: waiting_line(sup, q) for q in ("q1", "q3")}
        config_before = queues(sup)
    kinds_before = journal_kinds(server)
    # the first event of a new journal is the configuration it runs under, then the reload
    assert kinds_before[0] == "ConfigReloaded" and kinds_before.count("ConfigReloaded") == 2, kinds_before

    assert [cid for cid, _, _ in before["q1"]] == ["old0", "old1", "new-q1", "old2", "old3"], before
    assert [cid for cid, _, _ in before["q3"]] == ["new0", "new1"], before
    server.kill()
    server.start()

    with client(server, "sup") as sup:
        assert waiting_line(sup, "q1") == before["q1"], "q1's line or ages changed across the restart"
        assert waiting_line(sup, "q3") == before["q3"], "q3's line or ages changed across the restart"
        config_after = queues(sup)
        assert config_after == config_before and "q2" not in config_after
        assert ok(sup.get("/api/v1/contacts/gone-q2"))["state"] == "abandoned"
        # the restarted engine runs on exactly the journaled configuration: nothing to re-journal
        ok(sup.post("/api/v1/contacts", json={"id": "after-restart", "queue": "q3", "channel": "voice"}), 201)
        assert journal_kinds(server)[:-1] == kinds_before, journal_kinds(server)
        with client(server, "a1") as a1:
            ok(a1.post("/api/v1/agents/a1/login", json={"ready": True}))
        offered = [c["id"] for c in contacts(sup) if c["state"] == "offered"]
        assert offered == ["old0"], offered  # the longest-waiting contact goes first, as before the crash


def test_a_file_changed_while_the_engine_was_down(
        start_engine: Callable[..., EngineServer], make_site: Callable[..., dict[str, Any]]) -> None:
    """A restart is a reload too: a good new file is in force from the start, and one that would strand
    waiting contacts is refused; the engine then runs on the configuration its journal holds."""
    site = make_site()
    server = start_engine(site)
    with client(server, "sup") as sup:
        for n in range(3):
            ok(sup.post("/api/v1/contacts", json={"id": f"w{n}", "queue": "q2", "channel": "voice"}), 201)
        line = waiting_line(sup, "q2")
        config = queues(sup)
    server.kill()

    write_site(server, grown(site))
    server.start()
    with client(server, "sup") as sup:
        now = queues(sup)  # before any command: the file is already in force
        assert set(now) == {"q1", "q2", "q3"} and now["q1"]["strategy"] == "best_skill", now
        assert waiting_line(sup, "q2") == line
    server.kill()

    stranding = grown(site)
    del stranding["queues"]["q2"]
    write_site(server, stranding)
    server.start()
    with client(server, "sup") as sup:
        assert set(queues(sup)) == {"q1", "q2", "q3"}, "a file that strands waiting contacts was taken"
        assert waiting_line(sup, "q2") == line
        ok(sup.post("/api/v1/contacts", json={"id": "w3", "queue": "q2", "channel": "voice"}), 201)
        assert [cid for cid, _, _ in waiting_line(sup, "q2")] == ["w0", "w1", "w2", "w3"]
    assert "site file refused" in (server.log_path.read_text() if server.log_path else "")
    assert config["q2"]["waiting"] == 3
