"""Administration: reload the site configuration without a restart (also on SIGHUP)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from acd.errors import ConfigError
from engine.api.deps import admin
from engine.api.problems import ApiProblem
from engine.auth import Principal
from engine.configfile import ConfigFileError, load_file

router = APIRouter(prefix="/admin", tags=["admin"])


async def reload_site(app: Any) -> dict[str, Any]:
    """Load the file again; a bad file or a change that would strand work is refused, the old config stays."""
    path = app.state.site.path
    try:
        site = load_file(path)
    except ConfigFileError as exc:
        raise ApiProblem(422, "invalid-config", "Configuration refused", f"{path}: {len(exc.problems)} problem(s)",
                         errors=[{"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                                 for p in exc.problems]) from None
    try:
        await app.state.core.reload(site.center)
    except ConfigError as exc:  # a valid file that would strand live contacts or agents
        raise ApiProblem(422, "invalid-config", "Configuration refused",
                         f"{path}: the change would strand live work; the running configuration stays",
                         errors=[{"file": str(path), "line": None, "field": i.path, "message": i.message}
                                 for i in exc.issues]) from None
    app.state.site = site
    for agent, uri in site.engine.stations.items():
        app.state.stations.setdefault(agent, uri)
    return {"status": "reloaded", "file": str(path), "queues": len(site.center.queues),
            "agents": len(site.center.agents)}


@router.post("/reload")
async def reload(request: Request, p: Principal = Depends(admin)) -> dict[str, Any]:
    return await reload_site(request.app)
