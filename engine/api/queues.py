"""Queues: configuration, live statistics, 15-minute interval statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from engine.api.deps import Page, agent_user, core
from engine.api.problems import ApiProblem
from engine.api.views import queue_view
from engine.auth import Principal
from engine.core import Core

router = APIRouter(prefix="/queues", tags=["queues"])


def _queue(c: Core, queue_id: str) -> Any:
    q = c.router.center.queues.get(queue_id)
    if q is None:
        raise ApiProblem(404, "unknown-queue", "Unknown queue", f"no queue {queue_id!r}")
    return q


@router.get("")
async def list_queues(page: Page = Depends(), p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    return page.slice([queue_view(q, c.router) for q in c.router.center.queues.values()])


@router.get("/{queue_id}")
async def get_queue(queue_id: str, p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    return queue_view(_queue(c, queue_id), c.router)


@router.get("/{queue_id}/stats")
async def live_stats(queue_id: str, p: Principal = Depends(agent_user), c: Core = Depends(core)) -> dict[str, Any]:
    _queue(c, queue_id)
    now = c.clock()
    snap = c.router.queue_snapshot(queue_id, now)
    snap["as_of"] = now
    return snap


@router.get("/{queue_id}/intervals")
async def interval_stats(queue_id: str, page: Page = Depends(), p: Principal = Depends(agent_user),
                   c: Core = Depends(core)) -> dict[str, Any]:
    _queue(c, queue_id)
    rows = c.router.stats_as_of(c.clock()).interval_report(queue_id)
    rows.reverse()  # newest first
    return page.slice(rows)
