"""A ledger put back older than its last commits (restored from a backup, copied without its WAL): the jobs it
wrote ahead or recorded since read pending again, and a run would pay for them again (restore hunt, 2026-12-05).
Only stored videos were guarded; a job still running at the provider was sent again. Now the state directory's
commit mark (``ledger.mark``) is ahead of the ledger: every command that would write refuses it (exit 2), saying
what is missing and how to go on; read-only commands warn."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from test_cli_support import (
    SIX_JOBS,
    Provider,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SIX = SIX_JOBS.replace("concurrency: 1", "concurrency: 6")
TWO = SIX.replace("[cat, dog, owl]", "[cat]")


def _backup(state: Path, to: Path) -> None:
    """A consistent copy of the ledger as it is now (SQLite's backup API, as a backup tool would take it)."""
    source = sqlite3.connect(state / "ledger.db")
    dest = sqlite3.connect(to)
    try:
        source.backup(dest)
    finally:
        dest.close()
        source.close()


def _restore(backup: Path, state: Path) -> None:
    for newer in state.glob("ledger.db*"):
        newer.unlink()
    shutil.copyfile(backup, state / "ledger.db")


def _submitted_twice(tmp_path: Path, sim: Provider) -> tuple[Path, Path]:
    """Two jobs sent (running at the provider: its tasks take an hour), the ledger backed up, four more sent, the
    backup put back: (manifest, state)."""
    manifest = write_manifest(tmp_path, TWO, name="six.yaml")
    state = tmp_path / "state"
    first = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 3 and sim.accepted() == 2, str(first)
    _backup(state, tmp_path / "backup.db")  # the nightly backup: two jobs running, task ids recorded
    write_manifest(tmp_path, SIX, name="six.yaml")
    second = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert second.code == 3 and sim.accepted() == 6, str(second)
    assert counts(state, "six") == {"running": 6}
    _restore(tmp_path / "backup.db", state)  # the disk lost, the backup put back
    return manifest, state


def test_a_ledger_restored_from_a_backup_older_than_its_submits_is_refused_and_pays_nothing_again(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """The four jobs sent after the backup read pending in it; a run sent them again (10 tasks, two per body)."""
    sim = provider(task_seconds=3600)
    manifest, state = _submitted_twice(tmp_path, sim)

    again = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"paid again: {sim.accepted()} tasks\n{again}"
    assert again.code == 2, str(again)
    assert "older than what this state directory last recorded" in again.stderr, str(again)
    with_status = run_cli(*run_args("status", manifest, state), cwd=tmp_path)  # reads, warning first
    assert with_status.code == 0 and "older than what this state directory last recorded" in with_status.stderr


def test_the_way_on_the_refusal_prints_works_as_typed(tmp_path: Path, provider: ProviderFactory) -> None:
    """Going on with the older ledger on purpose: the mark set aside as the line says, the next run sends the jobs
    it reads pending (paid again: the operator's decision, made after comparing with the provider's console)."""
    sim = provider(task_seconds=3600)
    manifest, state = _submitted_twice(tmp_path, sim)
    refused = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert refused.code == 2, str(refused)
    typed = refused.stderr.split("set the mark aside (`", 1)[1].split("`", 1)[0]
    assert typed == f"mv {state / 'ledger.mark'} {state / 'ledger.mark.old'}"
    (state / "ledger.mark").rename(state / "ledger.mark.old")
    again = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 3 and sim.accepted() == 10, str(again)


def test_a_state_directory_moved_whole_to_another_disk_runs_on(tmp_path: Path, provider: ProviderFactory) -> None:
    """The ledger and its mark go together: consistent, nothing refused, nothing paid twice."""
    sim = provider(task_seconds=0.05)
    manifest = write_manifest(tmp_path, TWO, name="six.yaml")
    state = tmp_path / "state"
    first = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 3 and sim.accepted() == 2, str(first)
    moved = tmp_path / "otherdisk" / "state"
    shutil.copytree(state, moved, symlinks=True)
    shutil.rmtree(state)
    write_manifest(tmp_path, SIX, name="six.yaml")
    done = run_cli(*run_args("run", manifest, moved, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0 and sim.accepted() == 6 and sim.max_per_body() == 1, str(done)
    assert counts(moved, "six") == {"done": 6}
