"""Assembly: settings + site file -> store, bus, core, hub, metrics -> the FastAPI application.

`create_app` wires parts only; `lifespan` recovers the core from the store and starts the background
tasks (publisher, timer ticker, WebSocket hub) and stops them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cti import open311
from cti.bridge import start_bridge
from cti.connectors.guard import CrmCollector
from engine.api import admin, agents, auth_routes, calls, cases, contacts, desk, dial, health, kb, queues, users, ws
from engine.api import desk_cases
from engine.api import openapi, problems, public
from engine.auth import TokenSigner, load_secret
from engine.bus import make_bus
from engine.configfile import SiteConfig
from engine.core import Core, EngineUnavailable
from engine.metrics import Metrics
from engine.realtime import Hub
from engine.settings import Settings
from engine.store import StoreUnavailable
from engine.store.db import masked
from engine.store.store import Store
from engine.web import mount_desk

log = logging.getLogger("switchboard.app")


class BodyLimit:
    """Refuse request bodies over the limit with a 413 problem, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        too_large = started = False

        async def limited() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge()
            return message

        async def guarded(message: Message) -> None:
            # the framework may turn our exception into its own answer (FastAPI: 400): drop that one
            nonlocal started
            if too_large and not started:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except _TooLarge:
            pass
        if too_large and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = problems.problem(413, "too-large", "Request body too large",
                                f"the body exceeds {self.max_bytes} bytes", scope.get("path"))
        await resp(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: Settings, site: SiteConfig) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.effective_database_url())
    bus = make_bus(settings.redis_url, stream=settings.redis_stream)
    core = Core(site.center, store, bus, snapshot_every=settings.snapshot_every)
    hub = Hub(bus)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            store.migrate()
            _bootstrap_users(store.users, site)
            app.state.disabled_users.update(u.username for u in store.users.all() if u.disabled)
            core.recover()
            await core.adopt_pending_config()
        except (StoreUnavailable, EngineUnavailable) as exc:
            log.error("store unavailable at start; will retry", extra={"error": str(exc)})
        tasks = [asyncio.create_task(core.run_publisher(), name="publisher"),
                 asyncio.create_task(core.run_ticker(settings.tick_ms / 1000), name="ticker"),
                 asyncio.create_task(hub.run(), name="hub"),
                 asyncio.create_task(core.run_interval_saver(), name="intervals")]
        app.state.calls = None
        app.state.cti = await start_bridge(app)  # CTI screen-pops
        if settings.sip_enabled:  # embedded SIP voice (issue 5); `serve --no-sip` leaves it off
            from engine.telephony.calls import start_voice
            app.state.calls = await start_voice(app)
        log.info("serving", extra={"database": masked(store.db.url), "bus": "redis" if settings.redis_url else "memory",
                                   "queues": len(site.center.queues), "agents": len(site.center.agents)})
        try:
            yield
        finally:
            if app.state.calls is not None:
                await app.state.calls.stop()
            await app.state.cti.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.close()
            core.close()
            store.close()

    # the API explorer (/docs, /redoc) from files shipped in the package: a city network may not reach a CDN
    app = FastAPIOffline(title="Switchboard", version="0.1.0", lifespan=lifespan,
                  description="Contact-centre engine: ACD, agents, queues, contacts. Errors are RFC 9457 "
                              "problem details (application/problem+json).")
    app.state.settings = settings
    app.state.site = site
    app.state.store = store
    app.state.bus = bus
    app.state.core = core
    app.state.hub = hub
    app.state.signer = TokenSigner(load_secret(settings.data_dir), settings.token_ttl_s)
    app.state.stations = dict(site.engine.stations)
    # tokens are stateless: a disabled user's unexpired token is refused by name (this node's view)
    app.state.disabled_users = set()
    app.state.metrics = Metrics(core)
    app.state.metrics.registry.register(  # the CRM circuit breaker
        CrmCollector(lambda: getattr(getattr(app.state, "cti", None), "connector", None)))
    problems.install(app)
    openapi.install(app)
    for module in (auth_routes, agents, queues, contacts, calls, dial, users, admin, ws, cases, desk, desk_cases,
                   kb, public):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(open311.router)
    mount_desk(app)  # the agent desktop at /desk (static files, no build step)
    app.include_router(health.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        resp = problems.problem(503, "unavailable", "Service unavailable", f"store unavailable: {exc}",
                                request.url.path)
        resp.headers["Retry-After"] = "2"
        return resp

    return app


def _bootstrap_users(users: Any, site: SiteConfig) -> None:
    """Create the site file's demo users that do not exist yet (never overwrite a changed password)."""
    for u in site.engine.users:
        if users.get(u.username) is None:
            users.create(u.username, u.password, u.role, agent_id=u.agent)
