"""`runner adopt` and `runner retry --lost` ask the ledger's own provider (review of the issue-9 merge).

A ledger records the provider it was made with; its tasks exist only there. Verifying a task id at
another provider proves nothing about this ledger: attaching it would poll the ledger's provider for
an id it never issued (and call the job lost) — the operator must be told, and nothing changed.
"""

from __future__ import annotations

from pathlib import Path

from test_cli_adopt import _in_doubt_with_their_tasks

from test_cli_support import (
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def test_adopt_refuses_a_provider_other_than_the_ledgers(tmp_path: Path, provider: ProviderFactory) -> None:
    ours, other = provider(), provider()
    manifest = write_manifest(tmp_path)
    state, tasks = _in_doubt_with_their_tasks(tmp_path, ours, manifest)
    elsewhere = tmp_path / "elsewhere"
    # (--new-ledger: the manifest's jobs are in `state`, a new ledger for it elsewhere is made on purpose only)
    assert run_cli(*run_args("run", manifest, elsewhere, *other.engine_args(), "--new-ledger"), cwd=tmp_path).code == 0
    foreign = other.sim.task_ids()[0]  # a real task, but at another provider
    key = next(iter(tasks))
    result = run_cli("adopt", key, foreign, "--state", str(state), "--base-url", other.base_url, cwd=tmp_path)
    assert result.code == 2, str(result)
    assert ours.base_url in result.stderr and other.base_url in result.stderr
    assert counts(state) == {"in_doubt": 3}


def _all_lost(tmp_path: Path, sim_args: list[str], manifest: Path) -> tuple[Path, list[str]]:
    from runner.ledger import open_ledger

    state = tmp_path / "state"
    assert run_cli(*run_args("submit", manifest, state, *sim_args), cwd=tmp_path).code == 3
    with open_ledger(state) as ledger:  # e.g. marked lost during an outage with a wrong clock
        keys = [job.key for job in ledger.iter_jobs("trio")]
        for key in keys:
            ledger.mark_lost(key, reason="the provider no longer knows the task (TASK_NOT_FOUND)")
    return state, keys


def test_retry_lost_refuses_a_provider_other_than_the_ledgers(tmp_path: Path, provider: ProviderFactory) -> None:
    ours, other = provider(task_seconds=0.0), provider()
    manifest = write_manifest(tmp_path)
    state, _ = _all_lost(tmp_path, ours.engine_args(), manifest)
    result = run_cli("retry", str(manifest), "--state", str(state), "--lost", "--base-url", other.base_url,
                     cwd=tmp_path)
    assert result.code == 2, str(result)
    assert ours.base_url in result.stderr
    assert counts(state) == {"lost": 3}


def test_retry_lost_reopens_a_lost_job_an_edit_dropped(tmp_path: Path, provider: ProviderFactory) -> None:
    """A paid job the manifest no longer lists is still collected (an orphan): `retry --lost` reopens it too."""
    from runner.ledger import open_ledger

    sim = provider(task_seconds=0.0)
    manifest = write_manifest(tmp_path)
    state, keys = _all_lost(tmp_path, sim.engine_args(), manifest)
    write_manifest(tmp_path, THREE_JOBS_EDITED)  # the owl is dropped while its task is lost
    planned = run_cli(*run_args("collect", manifest, state, *sim.engine_args()), cwd=tmp_path)  # plans the edit
    assert planned.code == 1, str(planned)  # lost jobs
    with open_ledger(state, readonly=True) as ledger:
        assert ledger.orphans("trio"), "the edit did not drop a paid job"
    result = run_cli("retry", str(manifest), "--state", str(state), "--lost", "--base-url", sim.base_url,
                     cwd=tmp_path)
    assert "3 lost job(s) reopened" in result.stdout, str(result)
    with open_ledger(state, readonly=True) as ledger:
        states = {key: ledger.get(key).state for key in keys}  # type: ignore[union-attr]
    assert set(map(str, states.values())) == {"done"}, states
    assert sim.accepted() == 3


THREE_JOBS_EDITED = """\
name: trio
defaults:
  duration: 3
prompt: "a {animal} crossing a quiet street"
matrix:
  animal: [cat, dog]
output: "{animal}.mp4"
"""


def test_retry_in_doubt_records_journalled_task_ids_first(tmp_path: Path, provider: ProviderFactory) -> None:
    """An in-doubt job whose accepted task id is in the rescue journal (it could not be read when the job
    was put in doubt) is not quoted as "back to pending, pays again": `retry --in-doubt` records it first."""
    from runner.ledger import open_ledger
    from runner.ledger.rescue import RescueEntry, append_entry

    sim = provider()
    manifest = write_manifest(tmp_path)
    state, tasks = _in_doubt_with_their_tasks(tmp_path, sim, manifest)
    key, task_id = next(iter(tasks.items()))
    with open_ledger(state, readonly=True) as ledger:
        attempt = max(a.id for a in ledger.attempts(key) if a.kind == "submit")
    assert append_entry(state, RescueEntry(key=key, task_id=task_id, attempt=attempt, at=1.0))
    result = run_cli("retry", str(manifest), "--state", str(state), "--in-doubt", cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "2 in_doubt job(s) back to pending" in result.stdout, str(result)
    assert counts(state) == {"pending": 2, "running": 1}
