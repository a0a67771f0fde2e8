"""The store on SQLite and PostgreSQL: schema, journal and derived rows, recovery by replay, crash
consistency after kill -9, behaviour while the database is away, users and interval statistics.

Run as a script (`python test_store.py crash-writer URL N`) this module is also the process the
crash test kills: it appends the same deterministic workload the test regenerates.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from typing import Any, Callable, Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import create_engine, event, func, select, text

from acd import events as ev
from acd.config import load_center
from acd.model import FINAL_STATES, CenterConfig, Channel, ContactSpec, ContactState, Presence
from acd.router import Router
from acd.stats import COUNTER_FIELDS
from engine.store import StoreConflict, StoreNotMigrated, StoreUnavailable
from engine.store.migrate import current_revision, head_revision
from engine.store.models import AgentStateChange, Base, ContactRow, JournalEntry
from engine.store.store import Store
from engine.store.users import UserExists, Users
from engine.store.writer import JournalWriter

T0 = 1_700_000_000.0  # core time: epoch seconds, as the engine passes them

CENTER_DATA: dict[str, Any] = {
    "skills": ["general", "roads", "french"],
    "queues": {
        "general": {"skills": {"general": 1}, "wrap_up_s": 10, "wrap_up_codes": ["resolved", "sr-created"],
                    "priority_boost_per_s": 0.01, "steps": [{"after_s": 60, "level_drop": 2}]},
        "roads": {"skills": {"roads": 3}, "strategy": "best_skill",
                  "steps": [{"after_s": 45, "overflow_queues": ["general"]}]},
        "email": {"skills": {"general": 1}, "wrap_up_code_required": True, "wrap_up_codes": ["replied"]},
    },
    "agents": {
        f"a{i}": {"skills": {"general": 3 + i % 5, **({"roads": 4} if i % 2 else {}),
                             **({"french": 6} if i % 3 == 0 else {})},
                  "capacity": {"voice": 1, "chat": 2, "email": 1}}
        for i in range(1, 7)
    },
}
QUEUES = ("general", "roads", "email")


def center() -> CenterConfig:
    return load_center(CENTER_DATA)


def workload(n_contacts: int, seed: int = 7) -> Iterator[list[ev.Event]]:
    """A realistic, deterministic stream of command results (one list per command, as the engine
    appends them): agents log in, contacts arrive on three channels, agents accept, reject, hold and
    complete, callers abandon or ask for a callback, agents take breaks, timers fire."""
    c = center()
    router = Router(c)
    rng = random.Random(seed)
    t = T0
    for agent in c.agents:
        yield router.login(agent, t, ready=True)
    live: dict[str, None] = {}
    for i in range(n_contacts):
        t += rng.expovariate(2.0)
        queue = rng.choice(QUEUES)
        channel = Channel.EMAIL if queue == "email" else rng.choice((Channel.VOICE,) * 2 + (Channel.CHAT,))
        cid = f"c{i:05d}"
        attributes = {"caller": f"+1905555{i:04d}", "lang": rng.choice("ef")}
        out = router.enqueue(ContactSpec(id=cid, queue=queue, channel=channel, priority=rng.choice((0, 0, 1)),
                                         attributes=attributes), t)
        live[cid] = None
        yield out
        if tick := router.tick(t):
            yield tick
        for cid in list(live):
            contact = router.contacts[cid]
            if contact.state in FINAL_STATES:
                del live[cid]
                continue
            if out := _act(router, contact.id, contact.state, rng, t):
                yield out
        for agent, a in router.agents.items():
            r = rng.random()
            if a.presence is Presence.READY and not a.work and not a.offers and r < 0.01:
                yield router.set_not_ready(agent, t, "break")
            elif a.presence is Presence.NOT_READY and r < 0.2:
                yield router.set_ready(agent, t)


def _act(router: Router, cid: str, state: ContactState, rng: random.Random, t: float) -> list[ev.Event]:
    r = rng.random()
    agent = router.contacts[cid].agent or ""
    if state is ContactState.OFFERED:
        if r < 0.4:
            return router.accept(cid, agent, t)
        if r < 0.45:
            return router.reject(cid, agent, t)
    elif state is ContactState.CONNECTED:
        if r < 0.12:
            queue = router.contacts[cid].queue
            return router.complete(cid, t, "replied" if queue == "email" else None)
        if r < 0.14:
            return router.hold(cid, t)
        if r < 0.15:
            return router.transfer(cid, t, to_queue="general", note="needs general")
    elif state is ContactState.HELD and r < 0.3:
        return router.resume(cid, t)
    elif state is ContactState.QUEUED:
        if r < 0.004:
            return router.abandon(cid, t)
        if r < 0.006 and router.contacts[cid].channel is Channel.VOICE:
            return router.request_callback(cid, t)
    return []


def drive(store: Store, n_contacts: int) -> tuple[Router, list[list[int]], list[list[ev.Event]]]:
    """Run the workload through a live router, appending each command's events as the engine would."""
    router = Router(center())
    seqs, batches = [], []
    for batch in workload(n_contacts):
        for e in batch:
            router.apply(e)
        seqs.append(store.journal.append(batch))
        batches.append(batch)
    return router, seqs, batches


def all_contacts(store: Store) -> dict[str, Any]:
    return {r.id: r for r in store.journal.list_contacts(limit=1_000_000).items}


def assert_consistent(store: Store) -> Router:
    """Journal and derived rows agree: replaying the journal gives exactly the stored contacts."""
    entries = list(store.journal.load_events())
    seqs = [s for s, _ in entries]
    assert seqs == sorted(set(seqs))
    router = Router.replay(center(), (e for _, e in entries))  # raises if the journal were torn
    rows = all_contacts(store)
    assert set(rows) == set(router.contacts)
    last_seq: dict[str, int] = {}
    for seq, e in entries:
        if (cid := getattr(e, "contact", None)) is not None:
            last_seq[cid] = seq
    for cid, c in router.contacts.items():
        row = rows[cid]
        stored = (row.queue, row.channel, row.state, row.agent, row.enqueued_at, row.priority, row.attributes)
        assert stored == (c.queue, c.channel.value, c.state.value, c.agent, c.enqueued_at, c.priority,
                          c.attributes), cid
        assert row.last_seq == last_seq[cid]
    presence = sum(1 for _, e in entries if isinstance(
        e, (ev.AgentLoggedIn, ev.AgentLoggedOut, ev.AgentReady, ev.AgentNotReady)))
    with store.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(AgentStateChange)).scalar_one() == presence
    return router


def table_counts(store: Store) -> tuple[int, int, int]:
    with store.db.read() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
                     for t in (JournalEntry, ContactRow, AgentStateChange))


@contextlib.contextmanager
def opened(url: str, **kw: Any) -> Iterator[Store]:
    s = Store(url, **kw)
    try:
        yield s
    finally:
        s.close()


# ------------------------------------------------------------------------------------------------
# schema


def test_migration_builds_the_models_schema(open_store: Callable[..., Store]) -> None:
    s = open_store()
    with pytest.raises(StoreNotMigrated, match="switchboard migrate"):
        s.require_current()
    assert s.migrate() == head_revision()
    assert s.migrate() == head_revision()  # again: nothing to do
    s.require_current()
    with s.db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []


def test_migrate_command(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from engine.commands import migrate

    parser = argparse.ArgumentParser()
    migrate.register(parser.add_subparsers())
    args = parser.parse_args(["migrate", "--database-url", db_url])
    assert args.func(args) == 0
    assert "upgraded from empty to revision" in capsys.readouterr().out
    assert args.func(args) == 0
    assert f"already at revision {head_revision()}" in capsys.readouterr().out
    with opened(db_url) as s:
        assert current_revision(s.db) == head_revision()


def test_migrate_command_reports_an_unreachable_database(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from engine.commands import migrate

    parser = argparse.ArgumentParser()
    migrate.register(parser.add_subparsers())
    with socket_closed_port() as port:
        args = parser.parse_args(["migrate", "--database-url",
                                  f"postgresql://postgres:secret@127.0.0.1:{port}/test"])
        assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "database unavailable" in err and "secret" not in err


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A local port nobody listens on."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    yield port


# ------------------------------------------------------------------------------------------------
# journal and derived rows


def test_append_round_trips_events_in_order(store: Store) -> None:
    _, seqs, batches = drive(store, 30)
    flat_seqs = [s for b in seqs for s in b]
    assert flat_seqs == sorted(flat_seqs) and len(set(flat_seqs)) == len(flat_seqs)
    assert [len(s) for s in seqs] == [len(b) for b in batches]
    loaded = list(store.journal.load_events())
    assert [s for s, _ in loaded] == flat_seqs
    assert [e for _, e in loaded] == [e for b in batches for e in b]
    tail = list(store.journal.load_events(after_seq=flat_seqs[10], batch=7))  # small pages too
    assert [s for s, _ in tail] == flat_seqs[11:]
    assert store.journal.last_seq() == flat_seqs[-1]
    assert store.journal.count() == len(flat_seqs)
    assert store.journal.append([]) == []


def test_contact_rows_follow_the_router(store: Store) -> None:
    router, _, batches = drive(store, 80)
    assert assert_consistent(store).snapshot() == router.snapshot()
    states = {c.state for c in router.contacts.values()}
    assert {ContactState.QUEUED, ContactState.COMPLETED} <= states  # the workload exercises both ends
    # one contact's story, in order
    cid = next(c.id for c in router.contacts.values() if c.state is ContactState.COMPLETED)
    story = store.journal.events_for_contact(cid)
    assert [e for _, e in story] == [e for b in batches for e in b if getattr(e, "contact", None) == cid]
    assert story[0][1].kind == "ContactQueued" and story[-1][1].kind == "WrapUpCompleted"
    row = store.journal.get_contact(cid)
    assert row is not None and row.answered_at is not None and row.ended_at is not None
    assert store.journal.get_contact("nobody") is None


def test_listing_contacts_filters_and_pages(store: Store) -> None:
    router, _, _ = drive(store, 120)
    waiting = [c for c in router.contacts.values() if c.state is ContactState.QUEUED and c.queue == "general"]
    assert waiting
    got, after = [], None
    while True:
        page = store.journal.list_contacts(queue="general", state="queued", limit=7, after=after)
        got += page.items
        if page.next_after is None:
            break
        after = page.next_after
    assert sorted(r.id for r in got) == sorted(c.id for c in waiting)
    assert [r.first_seq for r in got] == sorted(r.first_seq for r in got)  # arrival order
    assert store.journal.count_contacts(queue="general", state="queued") == len(waiting)
    by_offset = store.journal.list_contacts(queue="general", state="queued", limit=5, offset=5).items
    assert [r.id for r in by_offset] == [r.id for r in got[5:10]]
    email = store.journal.list_contacts(channel="email", limit=1000).items
    assert email and all(r.queue == "email" or r.channel == "email" for r in email)
    assert {r.id for r in email} == {c.id for c in router.contacts.values() if c.channel is Channel.EMAIL}
    finished = store.journal.count_contacts(state=("completed", "abandoned"))
    assert finished == sum(1 for c in router.contacts.values() if c.state in FINAL_STATES)


def test_agent_state_history(store: Store) -> None:
    c = center()
    router = Router(c)
    for batch in (router.login("a1", T0), router.set_ready("a1", T0 + 5),
                  router.set_not_ready("a1", T0 + 60, "lunch"), router.set_ready("a1", T0 + 1800),
                  router.logout("a1", T0 + 3600)):
        store.journal.append(batch)
    history = store.journal.agent_history("a1")
    assert [(h["state"], h["reason"], h["t"]) for h in history] == [
        ("not_ready", None, T0), ("ready", None, T0 + 5), ("not_ready", "lunch", T0 + 60),
        ("ready", None, T0 + 1800), ("logged_out", None, T0 + 3600)]
    assert history[0]["event"] == "AgentLoggedIn"
    assert store.journal.agent_history("a2") == []


def test_concurrent_appends_keep_batches_whole_and_in_order(store: Store) -> None:
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(20):
                name = f"w{w}-{i}"
                batch: list[ev.Event] = [
                    ev.ContactQueued(T0 + i, f"{name}-{k}", "general", Channel.CHAT, (), 0, {}, T0 + i)
                    for k in range(3)]
                results[name] = store.journal.append(batch)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    by_seq = dict(store.journal.load_events())
    assert len(by_seq) == 4 * 20 * 3
    for name, seqs in results.items():
        assert seqs == list(range(seqs[0], seqs[0] + 3))  # one writer at a time: no interleaving
        assert [by_seq[s].contact for s in seqs] == [f"{name}-{k}" for k in range(3)]  # type: ignore[attr-defined]


def test_snapshots(store: Store) -> None:
    assert store.journal.latest_snapshot() is None
    for seq in (10, 20, 30, 40):
        store.journal.write_snapshot(seq, {"seq": seq, "waiting": {"general": ["c1", "c2"]}}, keep=2)
    assert store.journal.latest_snapshot() == (40, {"seq": 40, "waiting": {"general": ["c1", "c2"]}})
    store.journal.write_snapshot(40, {"seq": 40, "again": True}, keep=2)  # rewriting one is allowed
    assert store.journal.latest_snapshot() == (40, {"seq": 40, "again": True})
    with store.db.read() as conn:
        assert [r[0] for r in conn.execute(text("SELECT seq FROM snapshots ORDER BY seq"))] == [30, 40]


# ------------------------------------------------------------------------------------------------
# recovery


def test_recovery_rebuilds_the_same_router(store: Store, open_store: Callable[..., Store]) -> None:
    router, _, _ = drive(store, 200)
    for i in range(60):  # a burst at the end: plenty still waiting when the "crash" comes
        spec = ContactSpec(id=f"burst{i}", queue=QUEUES[i % 3],
                           channel=Channel.EMAIL if i % 3 == 2 else Channel.VOICE)
        store.journal.append(router.enqueue(spec, router.now + 0.5))
    waiting = {q: [c.id for c in router.waiting(q)] for q in QUEUES}
    assert sum(map(len, waiting.values())) > 50
    store.close()

    reopened = open_store()  # a new engine: nothing shared with the first
    reopened.require_current()
    rebuilt = Router.replay(center(), (e for _, e in reopened.journal.load_events()))
    assert rebuilt.snapshot() == router.snapshot()
    for q in QUEUES:
        assert [c.id for c in rebuilt.waiting(q)] == waiting[q]  # same order
        for c in rebuilt.waiting(q):
            assert c.enqueued_at == router.contacts[c.id].enqueued_at  # same original age
    # the rebuilt router carries on where the old one stopped
    assert rebuilt.next_due() == router.next_due()
    t = max(e.t for _, e in reopened.journal.load_events(after_seq=reopened.journal.last_seq() - 1)) + 1
    assert rebuilt.tick(t) == router.tick(t)


def test_recovery_from_snapshot_plus_tail(store: Store) -> None:
    """Snapshot + tail: what `load_events(after_seq=snapshot seq)` returns is exactly what came after."""
    _, seqs, batches = drive(store, 40)
    cut = len(seqs) // 2
    store.journal.write_snapshot(seqs[cut - 1][-1], {"note": "router state up to here"})
    snap = store.journal.latest_snapshot()
    assert snap is not None
    tail = [e for _, e in store.journal.load_events(after_seq=snap[0])]
    assert tail == [e for b in batches[cut:] for e in b]


CRASH_CONTACTS = 20_000  # more than the writer reaches before it is killed


def _crash_writer(url: str, n_contacts: int) -> None:
    with opened(url) as s:
        for batch in workload(n_contacts):
            seqs = s.journal.append(batch)
            print(len(seqs), seqs[-1], flush=True)


@pytest.mark.parametrize("kill_after", [25, 140])
def test_kill_9_leaves_a_consistent_prefix(store: Store, db_url: str, kill_after: int) -> None:
    """A writer killed with SIGKILL mid-stream: the store holds whole batches only, every batch the
    writer saw committed is there, and journal and contact rows agree."""
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "crash-writer", db_url,
                              str(CRASH_CONTACTS)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    confirmed = 0
    try:
        for _ in range(kill_after):
            line = child.stdout.readline()
            assert line, f"the writer stopped early (exit {child.poll()})"
            confirmed += 1
        threading.Event().wait(random.uniform(0.0, 0.02))  # land anywhere in the next append
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with opened(db_url) as reopened:
        assert_consistent(reopened)
        journal = [e for _, e in reopened.journal.load_events()]
        expected: list[ev.Event] = []
        ends = set()
        for batch in workload(CRASH_CONTACTS):
            if len(expected) >= len(journal):
                break
            expected += batch
            ends.add(len(expected))
        assert len(journal) in ends, "a batch was torn"
        assert journal == expected[:len(journal)]
        assert sum(1 for _ in ends) >= confirmed  # nothing the writer saw committed is lost
        # and the store carries on from there
        more = [ev.AgentNotReady(journal[-1].t + 1, "a1", "break")]
        assert reopened.journal.append(more)[0] > reopened.journal.last_seq() - 1


# ------------------------------------------------------------------------------------------------
# group commit


@pytest.mark.parametrize("max_batches, transactions", [(1000, 1), (50, None)])
def test_writer_commits_groups_in_submission_order(store: Store, max_batches: int,
                                                   transactions: int | None) -> None:
    batches = list(workload(40))
    writer = JournalWriter(store.journal, max_batches=max_batches, start=False)
    futures = [writer.submit(b) for b in batches]  # all queued before the writer runs: known grouping
    writer.start()
    results = [f.result(timeout=120) for f in futures]
    writer.close()
    assert writer.transactions == (transactions or -(-len(batches) // max_batches))
    assert [len(r) for r in results] == [len(b) for b in batches]
    flat = [s for r in results for s in r]
    assert flat == sorted(flat)
    assert [e for _, e in store.journal.load_events()] == [e for b in batches for e in b]
    assert_consistent(store)


def test_writer_refuses_work_after_a_failure_until_reset(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'writer.db'}"
    with opened(url, busy_timeout_s=0.2) as s:
        s.migrate()
        writer = JournalWriter(s.journal)
        assert writer.submit([ev.AgentLoggedIn(T0, "a1")]).result(timeout=30)
        blocker = sqlite3.connect(tmp_path / "writer.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        lost = writer.submit([ev.AgentReady(T0 + 1, "a1")])
        with pytest.raises(StoreUnavailable):
            lost.result(timeout=30)
        blocker.rollback()
        blocker.close()
        # the router is now ahead of the store: later commands must not land without the lost one
        with pytest.raises(StoreUnavailable):
            writer.submit([ev.AgentNotReady(T0 + 2, "a1", "break")]).result(timeout=30)
        assert isinstance(writer.failure, StoreUnavailable)
        writer.reset()  # (the engine rebuilt its router from the store)
        assert writer.submit([ev.AgentReady(T0 + 3, "a1")]).result(timeout=30)
        writer.close()
        with pytest.raises(RuntimeError, match="closed"):
            writer.submit([ev.AgentReady(T0 + 4, "a1")]).result(timeout=30)
        assert [e.kind for _, e in s.journal.load_events()] == ["AgentLoggedIn", "AgentReady"]
        assert [e.t for _, e in s.journal.load_events()] == [T0, T0 + 3]


# ------------------------------------------------------------------------------------------------
# the database going away


def _fail_mid_transaction(s: Store, pg_admin_url: str | None) -> Callable[[], None]:
    """Make the next write to `contacts` die after the journal insert went through: on PostgreSQL the
    server ends our session; on SQLite the driver reports a disk I/O error. Returns an undo."""
    fired = threading.Event()

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if fired.is_set() or "contacts" not in statement.split("(")[0] or statement.startswith("SELECT"):
            return
        fired.set()
        if pg_admin_url is None:
            raise sqlite3.OperationalError("disk I/O error")
        pid = conn.connection.dbapi_connection.info.backend_pid
        admin = create_engine(pg_admin_url)
        with admin.connect() as c:
            # wait=5000 ms: returns once the session is really gone, so the next statement meets a dead line
            assert c.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar_one()
        admin.dispose()

    event.listen(s.db.engine, "before_cursor_execute", before)
    return lambda: event.remove(s.db.engine, "before_cursor_execute", before)


def test_failure_inside_append_writes_nothing(store: Store, db_url: str) -> None:
    router, _, _ = drive(store, 20)
    before = table_counts(store)
    batch = router.enqueue(ContactSpec(id="late", queue="general"), T0 + 10_000)
    undo = _fail_mid_transaction(store, db_url if db_url.startswith("postgresql") else None)
    with pytest.raises(StoreUnavailable):
        store.journal.append(batch)
    undo()
    with opened(db_url) as other:
        assert table_counts(other) == before
        assert other.journal.get_contact("late") is None
    seqs = store.journal.append(batch)  # the same store works again at once
    assert len(seqs) == len(batch) and store.journal.get_contact("late") is not None
    assert_consistent(store)


def test_postgresql_away_and_back(pg_url: str, pg_proxy: Any) -> None:
    proxy, via_proxy = pg_proxy
    with opened(pg_url) as direct, opened(via_proxy, connect_timeout_s=2) as s:
        direct.migrate()
        router = Router(center())
        assert s.journal.append(router.login("a1", T0, ready=True))
        assert s.ping()
        before = table_counts(direct)

        proxy.cut()
        batch = router.enqueue(ContactSpec(id="c1", queue="general"), T0 + 1)
        with pytest.raises(StoreUnavailable, match="database unavailable"):
            s.journal.append(batch)
        assert not s.ping()
        with pytest.raises(StoreUnavailable):
            s.journal.list_contacts()
        assert table_counts(direct) == before

        proxy.restore()  # same port: the database is back
        assert s.ping()
        seqs = s.journal.append(batch)
        assert seqs and s.journal.get_contact("c1") is not None
        assert_consistent(direct)


def test_sqlite_locked_is_unavailable_until_released(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    with opened(url, busy_timeout_s=0.2) as s:
        s.migrate()
        router = Router(center())
        s.journal.append(router.login("a1", T0, ready=True))
        before = table_counts(s)
        blocker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        batch = router.enqueue(ContactSpec(id="c1", queue="general"), T0 + 1)
        with pytest.raises(StoreUnavailable, match="locked"):
            s.journal.append(batch)
        assert s.ping()  # WAL: readers carry on while a writer holds the lock
        blocker.rollback()
        blocker.close()
        assert table_counts(s) == before
        assert s.journal.append(batch)
        assert_consistent(s)


def test_sqlite_unopenable_file_is_unavailable(tmp_path: Any) -> None:
    (tmp_path / "dir.db").mkdir()
    with opened(f"sqlite:///{tmp_path / 'dir.db'}") as s:
        assert not s.ping()
        with pytest.raises(StoreUnavailable):
            s.journal.append([ev.AgentReady(T0, "a1")])


# ------------------------------------------------------------------------------------------------
# users and interval statistics


FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # the tests' hashing is cheap


def test_users(store: Store) -> None:
    users = Users(store.db, FAST_HASHER)
    ana = users.create("ana", "correct horse", "agent", agent_id="a1")
    assert (ana.username, ana.role, ana.agent_id, ana.disabled) == ("ana", "agent", "a1", False)
    users.create("sam", "battery staple", "supervisor")
    with pytest.raises(UserExists):
        users.create("ana", "other", "admin")
    with pytest.raises(ValueError, match="unknown role"):
        users.create("bob", "pw", "root")
    assert users.get("ana") == ana
    assert users.get("nobody") is None
    assert users.verify("ana", "correct horse") == ana
    assert users.verify("ana", "wrong") is None
    assert users.verify("nobody", "correct horse") is None
    with store.db.read() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE username = 'ana'")).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert users.disable("ana") and not users.disable("nobody")
    assert users.verify("ana", "correct horse") is None
    assert [u.username for u in users.all()] == ["ana", "sam"]
    assert [u.username for u in users.all(include_disabled=False)] == ["sam"]
    users.disable("ana", False)
    assert users.set_password("ana", "new secret")
    assert users.verify("ana", "correct horse") is None and users.verify("ana", "new secret") == ana
    assert isinstance(UserExists("x"), StoreConflict)
    # the store's own hasher (production parameters) upgrades a weaker hash on the next good login
    assert store.users.verify("ana", "new secret") == ana
    with store.db.read() as conn:
        upgraded = conn.execute(text("SELECT password_hash FROM users WHERE username = 'ana'")).scalar_one()
    assert upgraded != stored and f"m={store.users.hasher.memory_cost}" in upgraded
    assert store.users.verify("ana", "new secret") == ana


def test_interval_stats_upsert(store: Store) -> None:
    router, _, _ = drive(store, 150)
    router.settle(router.now)
    written = store.intervals.upsert_center(router.stats)
    rows = store.intervals.rows()
    assert written == len(rows) > 0
    expected = {(r["queue"], r["interval_start"]): r for q in QUEUES for r in router.stats.interval_report(q)}
    assert {(r["queue"], r["interval_start"]) for r in rows} == set(expected)
    for r in rows:
        want = expected[(r["queue"], r["interval_start"])]
        for name in COUNTER_FIELDS:
            assert r[name] == want[name], name
        assert r["report"]["sl_answered"] == want["sl_answered"]
    # the interval fills up: the same key is replaced, not duplicated
    key = rows[0]
    grown = {**key["report"], "offered": key["offered"] + 5}
    store.intervals.upsert([grown])
    again = store.intervals.rows(queue=key["queue"], since=key["interval_start"],
                                 until=key["interval_start"] + 1)
    assert len(again) == 1 and again[0]["offered"] == key["offered"] + 5
    assert len(store.intervals.rows()) == len(rows)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "crash-writer":
        _crash_writer(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"usage: {sys.argv[0]} crash-writer URL N_CONTACTS")
