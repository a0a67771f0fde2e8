"""Every operation of the OpenAPI document, fed generated requests (schemathesis): none may be a server error,
and every answer must be one the document lists (status, content type, body schema: see engine/api/openapi.py).

The demo site runs behind a real HTTP server and is called as its administrator, who may use every
operation. Requests come from the published schema itself, valid and invalid alike, so a path, query or
body the hand-written bad-input tests never thought of still has to end in a 2xx or a 4xx problem body.
Derandomized: the same requests every run (a failure is reproducible); raise FUZZ_EXAMPLES to look further.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from live_server import demo_app, serving
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
USER = os.environ.get("FUZZ_USER", "admin")  # any demo user: their role changes which refusals come


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
def test_every_answer_is_one_the_document_promises(case: Any, site: tuple[str, str]) -> None:
    """No server error; every status, content type and body is one the OpenAPI document lists for it."""
    _, token = site
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, timeout=30,
                           checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance])


def test_the_document_names_the_token_and_the_problems(site: tuple[str, str]) -> None:
    """What a client generator (or /docs' Authorize button) needs: the bearer scheme on the operations that
    need a token, problem+json for every refusal, and the GeoReport formats on Open311."""
    base, _ = site
    doc = httpx.get(f"{base}/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer", "description": "a token from POST /api/v1/auth/login"}
    queue = doc["paths"]["/api/v1/contacts"]["post"]
    assert queue["security"] == [{"HTTPBearer": []}]
    assert {"400", "401", "403", "404", "409", "413", "422", "503"} <= set(queue["responses"])
    for status in ("401", "409", "422"):
        assert queue["responses"][status]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    assert "security" not in login and "401" in login["responses"]
    assert "HTTPValidationError" not in json.dumps(doc["paths"])  # the framework's 422 shape: never sent
    services = doc["paths"]["/open311/v2/services.{fmt}"]["get"]
    assert set(services["responses"]) == {"200", "400", "403", "404", "503"}
    assert set(services["responses"]["404"]["content"]) == {"application/json", "text/xml"}
