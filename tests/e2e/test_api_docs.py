"""The API explorer (/docs) and reference (/redoc) in a real browser with no way off the machine.

A city's network may not reach a CDN: every script, style, font and call must come from the engine itself.
The test aborts any request that leaves 127.0.0.1, then uses /docs as an integrator would: hold a token with
Authorize, try an operation, read the answer. (ReDoc's "by Redocly" footer logo is an image off the machine:
without it the page works the same, so images are aborted but not counted.) Screenshots go to
test-artifacts/docs/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from live_server import demo_app, serving
from playwright.sync_api import Browser, Page, Route, expect

from .test_desk import REPO, browser  # noqa: F401 - the module-scoped browser fixture

SHOTS = REPO / "test-artifacts" / "docs"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(demo_app(Path(tmp_path_factory.mktemp("docs")))) as url:
        yield url


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:  # noqa: F811
    """A page whose requests off this machine are aborted (all but images listed); fails on a JavaScript error."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    left: list[str] = []

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            if route.request.resource_type != "image":
                left.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    yield page, left
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def test_docs_work_offline_with_a_token(base: str, offline_page: tuple[Page, list[str]]) -> None:
    page, left = offline_page
    token = httpx.post(f"{base}/api/v1/auth/login", json={"username": "sam", "password": "sam-demo"}).json()[
        "access_token"]
    page.goto(f"{base}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Switchboard")
    assert page.locator(".opblock").count() >= 50  # every operation, rendered from /openapi.json

    # Authorize: the bearer scheme the document declares holds the token for every call
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").first.fill(token)
    dialog.get_by_role("button", name="Apply credentials").click()
    dialog.get_by_role("button", name="Close").click()

    # try one: the queues, as supervisor sam
    op = page.locator("#operations-queues-list_queues_api_v1_queues_get")
    op.locator(".opblock-summary").click()
    op.get_by_role("button", name="Try it out").click()
    op.get_by_role("button", name="Execute").click()
    live = op.locator(".live-responses-table")
    expect(live.locator("tr.response .response-col_status")).to_have_text("200")
    expect(live.locator(".microlight").first).to_contain_text('"general"')
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "docs.png"))

    # without the token the same call is a 401 problem: what the document promises
    r = httpx.get(f"{base}/api/v1/queues")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert left == [], f"the page reached off the machine: {left}"


def test_redoc_renders_offline(base: str, offline_page: tuple[Page, list[str]]) -> None:
    page, left = offline_page
    page.goto(f"{base}/redoc")
    expect(page.locator("h1").first).to_contain_text("Switchboard")
    expect(page.get_by_role("menuitem", name="contacts")).to_be_visible()  # the operations, by tag
    assert left == [], f"the page reached off the machine: {left}"
