"""WebSockets: one per agent (their offers, state changes and contacts) and one for supervisors (all).

Connect with `?token=<bearer token>` (browsers cannot set headers on a WebSocket) and, when reconnecting,
`&after=<id of the last message you saw>` to receive what you missed first. Close codes: 4401 bad token,
4403 not allowed, 4409 too far behind (reload over HTTP, then reconnect without `after`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from engine.api.views import agent_view
from engine.auth import AuthError, Principal
from engine.bus import id_key
from engine.realtime import Hub

router = APIRouter(tags=["realtime"])


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with our code: a close before the handshake reaches a client as a bare HTTP 403."""
    await ws.accept()
    await ws.close(code=code, reason=reason[:120])


def _principal(ws: WebSocket) -> Principal | None:
    token = ws.query_params.get("token") or ""
    header = ws.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    try:
        p: Principal = ws.app.state.signer.verify(token)
        return p
    except AuthError:
        return None


async def _pump(ws: WebSocket, hub: Hub, agent: str | None, hello: dict[str, Any]) -> None:
    after = ws.query_params.get("after") or None
    if after is not None:
        try:
            id_key(after)
        except ValueError:
            await ws.send_json({"type": "error", "detail": f"after: not a message id: {after!r}"})
            await ws.close(code=4400)
            return
    client = await hub.attach(agent, after)
    if client is None:
        await ws.send_json({"type": "resync", "detail": "missed events are no longer kept: reload state"})
        await ws.close(code=4409)
        return
    try:
        await ws.send_json(hello)

        async def reader() -> None:  # we only listen to notice the close (and answer pings)
            while True:
                msg = await ws.receive_text()
                if msg == "ping":
                    await ws.send_text("pong")

        read_task = asyncio.create_task(reader())
        try:
            while not read_task.done():
                get = asyncio.create_task(client.queue.get())
                done, _ = await asyncio.wait({get, read_task}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    await ws.send_json(get.result())
                    if client.overflowed:
                        await ws.close(code=4409)
                        return
                else:
                    get.cancel()
        finally:
            read_task.cancel()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.detach(client)


@router.websocket("/ws/agent")
async def agent_socket(ws: WebSocket) -> None:
    p = _principal(ws)
    if p is None:
        await _refuse(ws, 4401, "invalid or expired token")
        return
    agent = ws.query_params.get("agent") or p.agent
    core = ws.app.state.core
    if agent is None or agent not in core.router.agents or not (p.at_least("supervisor") or p.agent == agent):
        await _refuse(ws, 4403, f"user {p.username!r} may not follow agent {agent!r}")
        return
    await ws.accept()
    hello = {"type": "hello", "agent": agent,
             "state": agent_view(core.router, agent, ws.app.state.stations.get(agent)),
             "last_id": ws.app.state.hub.last_id}
    await _pump(ws, ws.app.state.hub, agent, hello)


@router.websocket("/ws/supervisor")
async def supervisor_socket(ws: WebSocket) -> None:
    p = _principal(ws)
    if p is None:
        await _refuse(ws, 4401, "invalid or expired token")
        return
    if not p.at_least("supervisor"):
        await _refuse(ws, 4403, "the supervisor feed needs the supervisor role")
        return
    await ws.accept()
    core = ws.app.state.core
    now = core.clock()  # the router has no time of its own (-inf) before its first command
    hello = {"type": "hello", "queues": {q: core.router.queue_snapshot(q, now) for q in core.router.center.queues},
             "last_id": ws.app.state.hub.last_id}
    await _pump(ws, ws.app.state.hub, None, hello)
