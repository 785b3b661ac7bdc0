"""Suite-wide set-up: make the repository's `bench/` helpers importable; PostgreSQL servers; small disks; Hypothesis
without a per-example deadline."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from runner.service.reboot_warning import SCRATCH_ENV
from runner.testing_pg import REQUIRE_ENV, PostgresUnavailable, TempPostgres, required

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis fails an example that takes over 200 ms by default: on a loaded 2-core machine (CI beside other work) a
# pure function's example can, and the test failed for the time, not for what it checks (test_render_is_format_map).
settings.register_profile("runner", deadline=None)
settings.load_profile("runner")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# pytest's folders are under /tmp, which a reboot empties on many machines (tmpfs, or systemd-tmpfiles' `D /tmp`):
# every run and plan in a test would warn so. The suite says "I know" as an operator would (README, "--state");
# the tests of that warning take it away (runner/service/reboot_warning.py, tests/acceptance/test_cli_reboot.py).
os.environ[SCRATCH_ENV] = "1"


# ---------------------------------------------------------------- the book of this host's ledgers
@pytest.fixture(autouse=True, scope="session")
def session_ledger_book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The book of the session's module-scoped fixtures (set up before any test's own, below): never ~/.local/state."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.getbasetemp() / "xdg-state-session")
    yield
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before


@pytest.fixture(autouse=True)
def own_ledger_book(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own book of ledgers (runner/ledger/book.py, under ``$XDG_STATE_HOME``), which the CLI processes
    it starts inherit: through the user's real ~/.local/state, tests would refuse each other's new ledgers (and a
    developer's own batches). Not made here: the first run that notes a ledger makes it."""
    where = tmp_path_factory.getbasetemp() / f"xdg-state-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("XDG_STATE_HOME", str(where))
    return where


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


# ---------------------------------------------------------------- a small disk
SmallDisk = Callable[..., Path]


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size`` at a new folder ``where`` (``mount(where, size="1m", options="")``, extra mount
    options such as ``uid=…``), unmounted after the test; the test skips where no tmpfs can be mounted (not root).
    A real full file system: fill it with :func:`runner.testing.fill_disk`."""
    mounted: list[Path] = []

    def mount(where: Path, size: str = "1m", options: str = "") -> Path:
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(filter(None, [f"size={size}", options])),
                               "tmpfs", str(where)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
        mounted.append(where)
        return where

    try:
        yield mount
    finally:
        for where in reversed(mounted):
            subprocess.run(["umount", "-l", str(where)], check=False)
