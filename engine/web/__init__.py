"""Web pages the engine serves as static files (no build step): the agent desktop at /desk."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

DESK_DIR = Path(__file__).resolve().parent / "desk"


def mount_desk(app: FastAPI) -> None:
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def _home() -> RedirectResponse:  # the address the server prints: the one page there is
        return RedirectResponse("/desk/", status_code=307)

    @app.api_route("/desk", methods=["GET", "HEAD"], include_in_schema=False)
    async def _desk() -> RedirectResponse:  # relative links in the page need the trailing slash
        return RedirectResponse("/desk/", status_code=307)

    app.mount("/desk/", StaticFiles(directory=DESK_DIR, html=True), name="desk")
