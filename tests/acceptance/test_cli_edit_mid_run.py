"""The manifest edited while its run submits (operator probe, 2026-12-04): the run stops submitting within a
second of the save (the edit may drop the very jobs it would pay for next), collects what it paid for, exits 3,
and the next run plans the edit — the jobs it dropped are never paid for."""

from __future__ import annotations

import time
from pathlib import Path

from test_cli_support import (
    SIX_JOBS,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    start_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def test_an_edit_saved_mid_run_stops_the_submits_and_the_next_run_plans_it(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    sim = provider(task_seconds=0.4)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")  # concurrency 1: one task at a time
    state = tmp_path / "state"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while sim.accepted() < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert sim.accepted() >= 1, "the run never submitted"
        manifest.write_text(SIX_JOBS.replace("[cat, dog, owl]", "[cat]"), encoding="utf-8")  # owls and dogs dropped
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, stderr
    assert "six.yaml changed during this run: no more submits" in stderr, stderr
    paid = sim.accepted()
    assert paid <= 4, f"{paid} tasks paid after the edit was saved"  # ~1 s to notice, 0.4 s a task
    found = counts(state, "six")
    assert found.get("done", 0) == paid and set(found) <= {"done", "pending"}, found  # what was paid is collected
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert counts(state, "six") == {"done": 2}  # the cat at dawn and at dusk
    assert sim.accepted() - paid <= 2 and sim.max_per_body() == 1  # only cats not paid yet; nothing paid twice
