"""Operations: liveness, readiness (store and bus reachable), Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the checks say which part is down"}})
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    # reachable for reads, and the last journal write (or write probe) went through
    store_ok = await asyncio.to_thread(state.store.ping) and state.core.store_writable
    bus_ok = await state.bus.ping()
    core_ok = not state.core.stale
    ready = store_ok and bus_ok and core_ok and state.core.bus_ok
    body = {"status": "ready" if ready else "unavailable",
            "checks": {"store": store_ok, "bus": bus_ok and state.core.bus_ok, "core": core_ok}}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition", "content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
