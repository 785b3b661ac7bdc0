"""`runner adopt KEY TASK_ID`: an operator attaches a task id they know to an in-doubt job, verified first."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from runner.jobs import JobState, canonical_json
from runner.ledger import open_ledger

from test_cli_support import (
    KEY,
    Provider,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def _in_doubt_with_their_tasks(tmp_path: Path, sim: Provider, manifest: Path) -> tuple[Path, dict[str, str]]:
    """Run against a provider that drops every answer: 3 paid tasks, 3 jobs in doubt; returns key -> task id."""
    state = tmp_path / "state"
    sim.sim.configure(p_drop=1.0)
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 4
    sim.sim.configure(p_drop=0.0)
    by_body = {sim.sim.task(task_id).body_sha256: task_id for task_id in sim.sim.task_ids()}
    with open_ledger(state, readonly=True) as ledger:
        jobs = list(ledger.iter_jobs("trio", states=[JobState.IN_DOUBT]))
    tasks = {job.key: by_body[hashlib.sha256(canonical_json(job.request).encode()).hexdigest()] for job in jobs}
    assert len(tasks) == 3
    return state, tasks


def test_adopt_attaches_a_known_task_and_the_next_run_collects_it(tmp_path: Path, provider: ProviderFactory) -> None:
    """The task is verified, the job becomes running, and `collect` downloads it without paying again."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, tasks = _in_doubt_with_their_tasks(tmp_path, sim, manifest)
    key, task_id = next(iter(tasks.items()))
    result = run_cli("adopt", key[:10], task_id, "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path)
    assert result.code == 0, str(result)
    assert task_id in result.stdout and "running" in result.stdout
    assert counts(state) == {"in_doubt": 2, "running": 1}
    with open_ledger(state, readonly=True) as ledger:
        assert [a.outcome for a in ledger.attempts(key) if a.kind == "submit"][-1] == "adopted"
    collect = run_cli(*run_args("collect", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert collect.code == 4, str(collect)  # two jobs still in doubt
    assert counts(state) == {"in_doubt": 2, "done": 1}
    assert sim.accepted() == 3


def test_adopt_refuses_a_task_the_provider_does_not_know(tmp_path: Path, provider: ProviderFactory) -> None:
    """An unknown task id is refused (TASK_NOT_FOUND), exit 2, the job stays in doubt."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, tasks = _in_doubt_with_their_tasks(tmp_path, sim, manifest)
    key = next(iter(tasks))
    result = run_cli("adopt", key, "no-such-task", "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "TASK_NOT_FOUND" in result.stderr and "no-such-task" in result.stderr
    assert counts(state) == {"in_doubt": 3}


def test_adopt_refuses_a_job_that_is_not_in_doubt(tmp_path: Path, provider: ProviderFactory) -> None:
    """A done job is never given another task: exit 2, nothing changed."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    with open_ledger(state, readonly=True) as ledger:
        job = next(iter(ledger.iter_jobs("trio")))
    other = next(t for t in sim.sim.task_ids() if t != job.task_id)
    result = run_cli("adopt", job.key, other, "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "not in doubt" in result.stderr
    # Said as such before a key or a provider is asked for (it was refused for a missing key first, then for the
    # provider, and only then as not in doubt: the newcomer's walk through the README).
    bare = run_cli("adopt", job.key, other, "--state", str(state), cwd=tmp_path, key=None)
    assert bare.code == 2 and "not in doubt" in bare.stderr and "NOVITA_API_KEY" not in bare.stderr, str(bare)
    assert counts(state) == {"done": 3}


def test_adopt_refuses_a_task_of_another_kind_than_the_job_s_model(tmp_path: Path, provider: ProviderFactory) -> None:
    """A Std text-to-video task offered for a Pro job (a wrong id copied from the console): the provider's
    task_type names another tier, so it is refused, the job stays in doubt; --force attaches it on purpose
    (operator sweep, 2026-12-04: it was attached, and its video stored as the job's)."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, tasks = _in_doubt_with_their_tasks(tmp_path, sim, manifest)
    answer = httpx.post(f"{sim.base_url}/v3/async/kling-v3.0-std-t2v", json={"prompt": "another clip", "duration": 10},
                        headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    other = answer.json()["task_id"]
    key = next(iter(tasks))
    refused = run_cli("adopt", key, other, "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path)
    assert refused.code == 2 and "KLING_V3_STD_T2V" in refused.stderr and "--force" in refused.stderr, str(refused)
    assert counts(state) == {"in_doubt": 3}
    forced = run_cli("adopt", key, other, "--force", "--state", str(state), "--base-url", sim.base_url, cwd=tmp_path)
    assert forced.code == 0 and counts(state) == {"in_doubt": 2, "running": 1}, str(forced)


def test_the_kinds_that_contradict_and_those_that_do_not() -> None:
    from runner.service.adopting import kind_differs

    assert kind_differs("KLING_V3_STD_T2V", "kling-v3.0-pro-t2v")
    assert kind_differs("KLING_V3_PRO_I2V", "kling-v3.0-pro-t2v")
    assert not kind_differs("KLING_V3_PRO_T2V", "kling-v3.0-pro-t2v")
    assert not kind_differs("", "kling-v3.0-pro-t2v")  # not said: nothing to go by
    assert not kind_differs("VIDEO_GENERATION", "kling-v3.0-pro-t2v")  # words the model has none of
