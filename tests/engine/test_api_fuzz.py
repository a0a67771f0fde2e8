"""Every operation of the OpenAPI document, fed generated requests (schemathesis): none may be a server error.

The demo site runs behind a real HTTP server and is called as its administrator, who may use every
operation. Requests come from the published schema itself, valid and invalid alike, so a path, query or
body the hand-written bad-input tests never thought of still has to end in a 2xx or a 4xx problem body.
Derandomized: the same requests every run (a failure is reproducible); raise FUZZ_EXAMPLES to look further.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from live_server import demo_app, serving
from schemathesis.checks import not_a_server_error

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
USER = "admin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, the administrator's bearer token) of a demo site of its own."""
    app = demo_app(Path(tmp_path_factory.mktemp("fuzz")))
    with serving(app) as base:
        r = httpx.post(f"{base}/api/v1/auth/login", json={"username": USER, "password": f"{USER}-demo"})
        assert r.status_code == 200, r.text
        yield base, r.json()["access_token"]


@pytest.fixture(scope="module")
def api_schema(site: tuple[str, str]) -> Any:
    base, _ = site
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_is_a_server_error(case: Any, site: tuple[str, str]) -> None:
    _, token = site
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error],
                           timeout=30)
