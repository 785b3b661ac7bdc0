"""Suite-wide set-up: make the repository's `bench/` helpers importable."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.testing_pg import REQUIRE_ENV, PostgresUnavailable, TempPostgres, required

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- PostgreSQL
# One throwaway server per test session (runner.testing_pg), a fresh database per test that asks.
# Where no server can start, PostgreSQL tests skip with the reason — except in CI (CI=true or
# RUNNER_REQUIRE_POSTGRES=1, which .ci/run sets), where they fail: a missing server must not pass.


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempPostgres]:
    try:
        import psycopg  # noqa: F401

        server = TempPostgres.start()
    except (ImportError, PostgresUnavailable) as exc:
        if required():
            pytest.fail(f"cannot start a throwaway PostgreSQL server, and {REQUIRE_ENV} or CI is set: {exc}")
        pytest.skip(f"no PostgreSQL server for these tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: TempPostgres) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg_server.create_database()
