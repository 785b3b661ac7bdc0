"""`runner adopt`, `runner retry --lost` and `runner verify` ask the ledger's own provider (review of the issue-9 merge).

A ledger records the provider it was made with; its tasks exist only there. Verifying a task id at
another provider proves nothing about this ledger: attaching it would poll the ledger's provider for
an id it never issued (and call the job lost) — the operator must be told, and nothing changed. Without
--base-url each asks the provider the ledger records: --base-url > NOVITA_BASE_URL > the ledger's > the default.
"""

from __future__ import annotations

from pathlib import Path

from test_cli_adopt import _in_doubt_with_their_tasks

from runner.ledger import open_ledger

from test_cli_support import (
    ProviderFactory,
    counts,
    done_trio,
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


def test_retry_lost_without_base_url_asks_the_provider_the_ledger_records(tmp_path: Path,
                                                                          provider: ProviderFactory) -> None:
    """As `adopt`: flag > NOVITA_BASE_URL > the ledger's base URL > the default; the collect that follows asks it too
    (it was refused: 'the ledger was made with http://127.0.0.1:…; https://api.novita.ai does not know them')."""
    sim = provider(task_seconds=0.0)
    manifest = write_manifest(tmp_path)
    state, _ = _all_lost(tmp_path, sim.engine_args(), manifest)
    result = run_cli("retry", str(manifest), "--state", str(state), "--lost", cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "3 lost job(s) reopened" in result.stdout, str(result)
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 3


def test_retry_lost_on_a_simulator_ledger_says_so_before_asking_for_a_key(tmp_path: Path) -> None:
    """A ledger made with --simulate: its tasks died with that simulator; said without a key (it was 'NOVITA_API_KEY
    is not set … or try runner against the built-in simulator'), and a ledger with no lost job needs no key at all."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    quick = ("--simulate", "--sim-task-seconds", "60", "--rpm", "none")
    assert run_cli(*run_args("submit", manifest, state, *quick), cwd=tmp_path, key=None).code == 3
    nothing = run_cli("retry", str(manifest), "--state", str(state), "--lost", cwd=tmp_path, key=None)
    assert nothing.code == 0 and "no lost jobs in trio" in nothing.stdout, str(nothing)
    with open_ledger(state) as ledger:  # its simulator ended with the submit: a later run calls the tasks lost
        for job in list(ledger.iter_jobs("trio")):
            ledger.mark_lost(job.key, reason="the provider no longer knows the task (TASK_NOT_FOUND)")
    result = run_cli("retry", str(manifest), "--state", str(state), "--lost", cwd=tmp_path, key=None)
    assert result.code == 2, str(result)
    assert "--simulate" in result.stderr and "NOVITA_API_KEY" not in result.stderr, str(result)
    assert counts(state) == {"lost": 3}


def test_verify_without_base_url_downloads_from_the_provider_the_ledger_records(tmp_path: Path,
                                                                                provider: ProviderFactory) -> None:
    """`verify` asks for a fresh URL where `adopt` and `retry --lost` ask: the ledger's base URL unless told another."""
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    video = state / "outputs" / "trio" / "cat.mp4"
    good = video.read_bytes()
    video.unlink()
    with open_ledger(state) as ledger, ledger._conn.write() as db:  # its recorded URL has expired
        db.execute("UPDATE jobs SET url_expires_at = 1 WHERE key = ?", (keys["cat"],))
    fixed = run_cli("verify", str(manifest), "--state", str(state), cwd=tmp_path)
    assert fixed.code == 0, str(fixed)
    assert video.read_bytes() == good and sim.accepted() == 3  # nothing paid
