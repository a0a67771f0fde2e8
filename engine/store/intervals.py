"""Interval statistics: each queue's counters per interval, upserted as the router's counters grow.

The router keeps cumulative counters per interval (`acd.stats`), so each upsert replaces the row.
Counters get their own columns (for BI tools reading SQL); the whole report, ratios included, is
kept as JSON beside them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, cast

from sqlalchemy import Table, select

from acd.stats import CenterStats
from engine.store.db import Database, upsert
from engine.store.models import INTERVAL_COUNTERS, IntervalStat

_stats = cast(Table, IntervalStat.__table__)


class IntervalStats:
    def __init__(self, db: Database):
        self.db = db

    def upsert(self, reports: Iterable[Mapping[str, Any]]) -> int:
        """Store rows shaped like `CenterStats.interval_report()`'s ("queue", "interval_start", counters,
        ratios, "occupancy"). Returns how many rows were written."""
        now = datetime.now(timezone.utc)
        rows = []
        for r in reports:
            row: dict[str, Any] = {"queue": r["queue"], "interval_start": float(r["interval_start"]),
                                   "occupancy": r.get("occupancy"), "report": dict(r), "updated_at": now}
            for name in INTERVAL_COUNTERS:
                row[name] = r.get(name, 0)
            rows.append(row)
        if rows:
            with self.db.write() as conn:
                upsert(conn, _stats, rows, ("queue", "interval_start"))
        return len(rows)

    def upsert_center(self, stats: CenterStats, *, since: float | None = None) -> int:
        """Every queue's intervals from the router's stats (only those starting at or after `since`)."""
        reports = [r for q in stats.queues for r in stats.interval_report(q)
                   if since is None or r["interval_start"] >= since]
        return self.upsert(reports)

    def rows(self, *, queue: str | None = None, since: float | None = None,
             until: float | None = None) -> list[dict[str, Any]]:
        """Stored intervals in time order (`since` <= interval_start < `until`), as plain dicts."""
        query = select(_stats).order_by(_stats.c.interval_start, _stats.c.queue)
        if queue is not None:
            query = query.where(_stats.c.queue == queue)
        if since is not None:
            query = query.where(_stats.c.interval_start >= since)
        if until is not None:
            query = query.where(_stats.c.interval_start < until)
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
