"""What a whole `runner run` imports (issue 14: the time from the process's start to its first submit).

A real ``runner -q run`` of a SQLite ledger against a simulator subprocess, its modules listed at exit;
asserted on the modules imported, never a timing (bench/run_phases.py gives the figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The modules are listed by an exit callback: the entry point runs those, then ends the process.
PROBE = """
import atexit, json, sys
sys.argv = ["runner", *json.loads(sys.argv[1])]
atexit.register(lambda: print(json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)), file=sys.__stderr__,
                              flush=True))
from runner._entry import main
main()
"""

MANIFEST = """name: imports
prompt: "A slow aerial shot of {city}"
defaults: {duration: 5}
matrix:
  city: [Tokyo, Lagos, Lima]
output: "{city}.mp4"
"""


def run_modules(tmp_path: Path, base_url: str) -> set[str]:
    manifest = tmp_path / "imports.yaml"
    manifest.write_text(MANIFEST)
    args = ["-q", "run", str(manifest), "--state", str(tmp_path / "state"), "--base-url", base_url, "--rpm", "none"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "NOVITA_"))}
    env["NOVITA_API_KEY"] = "test-key-0123456789"
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, timeout=120,
                          check=False, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_a_sqlite_run_imports_no_postgresql_code(tmp_path: Path, sim_process: Callable[..., Any]) -> None:
    """`runner run` of a SQLite ledger does not import the PostgreSQL backend (~20 ms of start-up) to learn that its
    ledger is not a PostgreSQL one (2.5-4 ms of CPU with its bytecode cached)."""
    sim = sim_process(task_seconds=0.05)
    modules = run_modules(tmp_path, sim.base_url)
    assert {"runner.engine.core", "runner.ledger.sqlite.ledger"} <= modules  # the probe ran a whole run
    assert sorted(m for m in modules if m == "runner.ledger.postgres" or m.startswith("runner.ledger.postgres.")) == []


# What a run of a plain manifest never needs: other commands' modules, the built-in simulator, the live view, the
# endpoints' request models (planning reads the plain specs), the PostgreSQL driver, the data-frame stack.
NOT_ON_THE_RUN_PATH = ("rich", "pygments", "psycopg", "sqlite_utils", "pandas", "numpy", "pyarrow", "datasets", "httpx._main",
                       "runner.simulator", "runner.review", "runner.reporting.gallery", "runner.reporting.dataset",
                       "runner.reporting.hf_card", "runner.reporting.live", "runner.manifest.spec_models",
                       "runner.endpoints.kling", "runner.endpoints.kling_t2v", "runner.endpoints.kling_i2v", "runner.endpoints.kling_motion",
                       "runner.service.retrying", "runner.cli.report", "runner.cli.show", "runner.cli.review")


def test_a_run_imports_nothing_its_path_does_not_need(tmp_path: Path, sim_process: Callable[..., Any]) -> None:
    """Regression guard on start-up (issue 14): none of the modules a plain `runner run` does not use is imported."""
    sim = sim_process(task_seconds=0.05)
    modules = run_modules(tmp_path, sim.base_url)
    assert "runner.engine.core" in modules
    assert sorted(m for m in modules for heavy in NOT_ON_THE_RUN_PATH if m == heavy or m.startswith(heavy + ".")) == []


def test_is_shared_still_tells_a_postgresql_ledger_from_a_sqlite_one(tmp_path: Path, pg_url: str) -> None:
    """``is_shared`` (the engine's claims and leases) is True for a PostgreSQL ledger, False for SQLite."""
    from runner.ledger.factory import is_shared, open_backend

    sqlite = open_backend(tmp_path / "sqlite")
    postgres = open_backend(tmp_path / "pg", url=pg_url)
    try:
        assert (is_shared(sqlite), is_shared(postgres)) == (False, True)
    finally:
        sqlite.close()
        postgres.close()
