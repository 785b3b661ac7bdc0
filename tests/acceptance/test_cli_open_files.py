"""A run under a low open-file limit (``ulimit -n``): it fits its connections to the limit and says so.

Limits sweep, 2026-12-05: ``runner run --concurrency 200`` under ``ulimit -n 64`` opened a connection per submit
until every open failed with EMFILE: connects (the run then stopped as if the provider were unreachable) and, worse,
the import that built the submit answer's validator after a POST, so 51 paid jobs were held in doubt for an operator.
"""

from __future__ import annotations

import functools
import resource
import subprocess
from pathlib import Path

import pytest

from test_cli_support import (
    KEY,
    MANY_JOBS,
    ProviderFactory,
    clean_env,
    cli_argv,
    counts,
    provider,
    run_args,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def _at_most(files: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))  # soft and hard: the run cannot raise it


def _run(tmp_path: Path, files: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True,
                          text=True, timeout=120, check=False, preexec_fn=functools.partial(_at_most, files))


def test_a_run_of_200_at_once_under_ulimit_n_64_does_every_job_once_and_names_the_limit(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`--concurrency 200` under `ulimit -n 64` (hard): every job done, each paid once, none in doubt, exit 0; one
    warning names the limit and the `ulimit -n` that lifts it."""
    sim = provider(task_seconds=0.2)
    manifest = write_manifest(tmp_path, MANY_JOBS, name="many.yaml")
    state = tmp_path / "state"
    done = _run(tmp_path, 64, *run_args("run", manifest, state, *sim.engine_args("--concurrency", "200")))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    assert counts(state, "many") == {"done": 200}
    assert sim.accepted() == 200 and sim.max_per_body() == 1
    assert "Too many open files" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.count("open-file limit (ulimit -n 64)") == 1 and "`ulimit -n " in done.stderr, done.stderr


@pytest.mark.parametrize("files", [12, 14])
def test_a_run_under_an_open_file_limit_too_low_to_start_sends_nothing_exits_6_and_says_which(
        tmp_path: Path, provider: ProviderFactory, files: int) -> None:
    """`ulimit -n 12` or `14`: one line naming the open-file limit, exit 6, nothing sent, every job pending. It was a
    traceback and exit 1 ('some jobs failed': an import in the signal watcher met EMFILE) or exit 3 with 'Too many
    open files; fix it and run again' (the first open that failed, wherever it was)."""
    sim = provider()
    manifest = write_manifest(tmp_path, MANY_JOBS, name="many.yaml")
    state = tmp_path / "state"
    done = _run(tmp_path, files, *run_args("run", manifest, state, *sim.engine_args("--concurrency", "200")))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 6, done.stderr[-3000:]
    assert "open-file limit" in done.stderr and "ulimit -n" in done.stderr, done.stderr[-3000:]
    assert sim.accepted() == 0
    assert set(counts(state, "many")) <= {"pending"}
