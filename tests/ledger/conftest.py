"""Ledger stores for tests: every store test runs against SQLite and against PostgreSQL.

PostgreSQL comes from `POTLUCK_TEST_POSTGRES_URL` (`.ci/postgres` starts Debian's cluster and
prints it); each test gets a fresh database. Without the variable the PostgreSQL cases are
skipped on a developer's machine, and fail in CI.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit

import pytest
from psycopg.conninfo import conninfo_to_dict
from pytest_postgresql.janitor import DatabaseJanitor


@pytest.fixture
def postgres_url():
    base = os.environ.get("POTLUCK_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("POTLUCK_TEST_POSTGRES_URL is not set; .ci/run starts PostgreSQL and sets it")
        pytest.skip("POTLUCK_TEST_POSTGRES_URL not set (run `bash .ci/postgres` to start PostgreSQL)")
    info = conninfo_to_dict(base)
    dbname = f"potluck_test_{secrets.token_hex(6)}"
    with DatabaseJanitor(user=info["user"], password=info.get("password"), host=info["host"], port=info["port"],
                         dbname=dbname, connection_timeout=10):
        yield urlsplit(base)._replace(path=f"/{dbname}").geturl()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return request.getfixturevalue("postgres_url")
