"""Journal speed on SQLite and PostgreSQL. Prints figures; asserts nothing.

    python tests/bench/bench_store.py [N_CONTACTS]

Uses the store tests' workload (a live router's command results, one batch per command), generated
before timing so only the store is measured:
- append:  one transaction per command (`Journal.append`), the simple path;
- group:   `JournalWriter` fed as fast as possible (group commit), the sustainable ceiling;
- paced:   `JournalWriter` fed at 100 contacts/s in real time; latency from submit to durable.
PostgreSQL from SWITCHBOARD_TEST_POSTGRES_URL (default the local server), in a scratch schema.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from test_store import workload  # noqa: E402 - the store tests' deterministic workload

from engine.store.store import Store  # noqa: E402
from engine.store.writer import JournalWriter  # noqa: E402

PG_URL = os.environ.get("SWITCHBOARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PACED_CONTACTS_PER_S = 100.0


def fresh(url_factory: Callable[[], Any]) -> Store:
    store = Store(url_factory())
    store.migrate()
    return store


def run_append(store: Store, batches: list[Any]) -> float:
    start = time.perf_counter()
    for batch in batches:
        store.journal.append(batch)
    return time.perf_counter() - start


def run_group(store: Store, batches: list[Any]) -> tuple[float, int]:
    writer = JournalWriter(store.journal)
    start = time.perf_counter()
    futures = [writer.submit(b) for b in batches]
    for f in futures:
        f.result()
    spent = time.perf_counter() - start
    writer.close()
    return spent, writer.transactions


def run_paced(store: Store, batches: list[Any], contacts: int) -> tuple[list[float], int, float]:
    """Submit each command at its share of real time for PACED_CONTACTS_PER_S; latency per command."""
    writer = JournalWriter(store.journal)
    per_batch = contacts / PACED_CONTACTS_PER_S / len(batches)
    latencies: list[float] = []
    futures: list[Future[list[int]]] = []
    start = time.perf_counter()
    for i, b in enumerate(batches):
        delay = start + i * per_batch - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent = time.perf_counter()
        f = writer.submit(b)
        f.add_done_callback(lambda _f, sent=sent: latencies.append(time.perf_counter() - sent))
        futures.append(f)
    for f in futures:
        f.result()
    spent = time.perf_counter() - start
    writer.close()
    return latencies, writer.transactions, spent


def rates(commands: int, events: int, contacts: int, spent: float) -> str:
    return (f"{commands / spent:8,.0f} commands/s {events / spent:8,.0f} events/s "
            f"{contacts / spent:6,.0f} contacts/s")


def bench(label: str, url_factory: Callable[[], Any], batches: list[Any]) -> None:
    events = sum(map(len, batches))
    contacts = sum(1 for b in batches for e in b if e.kind == "ContactQueued")
    n = len(batches)
    print(f"{label}: {n} commands, {events} events, {contacts} contacts")

    store = fresh(url_factory)
    spent = run_append(store, batches)
    start = time.perf_counter()
    replayed = sum(1 for _ in store.journal.load_events())
    read = time.perf_counter() - start
    store.close()
    print(f"  append  {rates(n, events, contacts, spent)}   (load_events: {replayed / read:,.0f} events/s)")

    store = fresh(url_factory)
    spent, txns = run_group(store, batches)
    store.close()
    print(f"  group   {rates(n, events, contacts, spent)}   ({n / txns:.1f} commands per transaction)")

    store = fresh(url_factory)
    lat, txns, spent = run_paced(store, batches, contacts)
    store.close()
    lat.sort()
    print(f"  paced at {PACED_CONTACTS_PER_S:.0f} contacts/s: kept up {contacts / spent:.0f} contacts/s, "
          f"latency p50 {statistics.median(lat) * 1000:.1f} ms, "
          f"p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms, "
          f"max {lat[-1] * 1000:.1f} ms ({n / txns:.1f} commands per transaction)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    batches = list(workload(n))
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        counter = iter(range(1000))
        bench("sqlite (WAL, synchronous=FULL)", lambda: f"sqlite:///{tmp}/bench{next(counter)}.db", batches)
    base = make_url(PG_URL).set(drivername="postgresql+psycopg")
    admin = create_engine(base)
    schemas: list[str] = []

    def pg_url() -> Any:
        schema = f"sbbench_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        return base.update_query_dict({"options": f"-csearch_path={schema}"})

    try:
        bench("postgresql", pg_url, batches)
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
