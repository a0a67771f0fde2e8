"""What the city's web site may show without signing in: the current wait on each public line.

Callers want the expected wait announced and shown on the web site (DOMAIN.md). The site file lists the
queues to show (`public_waits:`); nothing else is public. Per line: its name, how many wait in line, and the
wait a caller joining now would be told (the same estimator as GET /api/v1/contacts/{id}); no one's data.
A page on the city's own domain may fetch it from the browser (CORS: any origin) and caches can hold it 15 s;
the engine itself works the figures out again only when something changed (see `_lines`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from acd.model import Channel
from engine.api.deps import core
from engine.core import Core
from engine.hours import OpeningHours

router = APIRouter(prefix="/public", tags=["public"])

CACHE_S = 15


@router.get("/waits", summary="The current wait on each public line (no sign-in; for the city's web site)")
async def waits(request: Request, response: Response, c: Core = Depends(core),
                channel: Channel = Query(Channel.VOICE, description="the way the caller would reach us")
                ) -> dict[str, Any]:
    now = c.clock()
    at = datetime.fromtimestamp(now, UTC)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = f"public, max-age={CACHE_S}"
    return {"as_of": at.isoformat().replace("+00:00", "Z"), "channel": channel.value,
            "open": _hours(request.app.state).is_open(at),
            "lines": _lines(request.app.state, c, channel)}


def _lines(state: Any, c: Core, channel: Channel) -> list[dict[str, Any]]:
    """Each public line's figures. Anyone may ask, as often as they like, so they are worked out again only
    when something changed: the router (an event journaled since, or a new router) or the site file. A
    flood of requests then costs a dictionary read each, not a pass over the queues."""
    cache: dict[Channel, tuple[Any, int, Any, list[dict[str, Any]]]] | None = getattr(state, "public_lines", None)
    if cache is None:
        cache = state.public_lines = {}
    router = c.router
    held = cache.get(channel)
    if held is not None and held[0] is router and held[1] == c.last_seq and held[2] is state.site:
        return held[3]
    lines = []
    for queue in state.site.engine.public_waits:
        q = router.center.queues[queue]
        in_line, serving = router.in_line(queue), router.serving(queue)
        if not serving:
            wait = None  # nobody signed in to serve it: no honest estimate to give
        elif not in_line and router.free_to_serve(queue, channel):
            wait = 0  # an agent is free: a caller joining now is offered at once
        else:
            wait = round(router.expected_wait(queue, in_line + 1))
        lines.append({"queue": queue, "name": q.name or queue, "in_line": in_line, "agents_serving": serving,
                      "expected_wait_s": wait})
    cache[channel] = (router, c.last_seq, state.site, lines)
    return lines


def _hours(state: Any) -> OpeningHours:
    """The site's opening hours, made once per site file (a reload brings a new one)."""
    made = getattr(state, "opening_hours", None)
    if made is None or made[0] is not state.site:
        made = state.opening_hours = (state.site, OpeningHours.of_site(state.site))
    return made[1]
