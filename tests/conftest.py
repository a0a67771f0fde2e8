"""Fixtures for every test folder (helpers in tests/testsupport.py)."""

from __future__ import annotations

import pytest

import testsupport


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL test server, checked once; the tests that use it fail (saying why) if it is down."""
    return testsupport.pg_server_url()
