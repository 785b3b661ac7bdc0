"""Two manifest files that say the same `name:` in one state directory (a copy made to try a variant): each run
replaces the other's jobs, so the run says so, naming both files (found by the operator probe of 2026-12-04:
`export a.yaml` showed b.yaml's prompts, and the videos moved to _orphans and back at every switch, silently)."""

from __future__ import annotations

from pathlib import Path

from test_cli_support import THREE_JOBS, ProviderFactory, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def test_a_second_file_with_the_same_name_is_named_in_a_warning(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    calm = write_manifest(tmp_path, THREE_JOBS, name="calm.yaml")
    state = tmp_path / "state"
    first = run_cli(*run_args("run", calm, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 0 and "same name" not in first.stderr, str(first)
    moved = tmp_path / "calm-renamed.yaml"
    calm.rename(moved)  # the same batch under a new file name, the old one gone: nothing to say
    renamed = run_cli(*run_args("run", moved, state, *sim.engine_args()), cwd=tmp_path)
    assert renamed.code == 0 and "same name" not in renamed.stderr, str(renamed)
    stormy = write_manifest(tmp_path, THREE_JOBS.replace("a quiet street", "a stormy street"), name="stormy.yaml")
    second = run_cli(*run_args("run", stormy, state, *sim.engine_args()), cwd=tmp_path)
    assert second.code == 0, str(second)
    line = next((line for line in second.stderr.splitlines() if "same name" in line), "")
    assert str(moved) in line and str(stormy) in line and "name: trio" in line, second.stderr
    again = run_cli(*run_args("run", stormy, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and "same name" not in again.stderr, str(again)  # planned already: said once
