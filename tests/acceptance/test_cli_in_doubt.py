"""Paying again is always the operator's explicit decision, and the CLI says how many and what it costs."""

from __future__ import annotations

from pathlib import Path

from test_cli_support import (
    THREE_JOBS,
    THREE_JOBS_USD,
    Provider,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

COST = f"{THREE_JOBS_USD:.2f} USD"


def _three_in_doubt(tmp_path: Path, sim: Provider, manifest: Path) -> Path:
    """Run once against a provider that drops every submit's answer: 3 paid tasks, 3 jobs in doubt."""
    state = tmp_path / "state"
    sim.sim.configure(p_drop=1.0)
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 4, str(result)
    sim.sim.configure(p_drop=0.0)
    assert counts(state) == {"in_doubt": 3}
    return state


def test_in_doubt_resubmit_flag_says_how_many_and_the_cost_then_pays_again(tmp_path: Path,
                                                                          provider: ProviderFactory) -> None:
    """`run --in-doubt resubmit` announces the count and estimated cost, then resubmits and finishes."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = _three_in_doubt(tmp_path, sim, manifest)
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args("--in-doubt", "resubmit")), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "resubmitting 3 in-doubt job(s)" in result.stderr and COST in result.stderr, str(result)
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 6 and sim.max_per_body() == 2  # paid twice, as the operator chose


def test_manifest_resubmit_policy_applies_unless_the_flag_says_hold(tmp_path: Path,
                                                                  provider: ProviderFactory) -> None:
    """`in_doubt: resubmit` in the manifest resubmits held jobs (count and cost said); `--in-doubt hold` beats it."""
    sim = provider()
    manifest = write_manifest(tmp_path, THREE_JOBS + "in_doubt: resubmit\n")
    state = _three_in_doubt(tmp_path, sim, manifest)
    held = run_cli(*run_args("run", manifest, state, *sim.engine_args("--in-doubt", "hold")), cwd=tmp_path)
    assert held.code == 4, str(held)
    assert sim.accepted() == 3
    assert counts(state) == {"in_doubt": 3}
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "resubmitting 3 in-doubt job(s)" in result.stderr and COST in result.stderr, str(result)
    assert counts(state) == {"done": 3}


def test_retry_in_doubt_says_how_many_and_the_cost_and_moves_them_to_pending(tmp_path: Path,
                                                                            provider: ProviderFactory) -> None:
    """`runner retry --in-doubt` prints the count and estimated cost, warns it may pay twice, resets to pending."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = _three_in_doubt(tmp_path, sim, manifest)
    result = run_cli("retry", str(manifest), "--state", str(state), "--in-doubt", cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "3 in_doubt job(s)" in result.stdout and COST in result.stdout, str(result)
    assert "paid" in result.stdout
    assert counts(state) == {"pending": 3}
    assert sim.accepted() == 3  # retry itself sends nothing
    done = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0, str(done)
    assert counts(state) == {"done": 3}


def test_retry_failed_says_how_many_and_the_cost_and_a_run_pays_again(tmp_path: Path,
                                                                     provider: ProviderFactory) -> None:
    """`runner retry --failed` puts failed jobs back to pending with count and cost; the next run finishes them."""
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 1
    sim.sim.configure(p_task_failed=0.0)
    result = run_cli("retry", str(manifest), "--state", str(state), "--failed", cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "3 failed job(s)" in result.stdout and COST in result.stdout, str(result)
    assert counts(state) == {"pending": 3}
    done = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0, str(done)
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 6


def test_retry_without_saying_which_is_a_usage_error(tmp_path: Path) -> None:
    """`runner retry` without --failed or --in-doubt exits 2 and changes nothing."""
    manifest = write_manifest(tmp_path)
    result = run_cli("retry", str(manifest), "--state", str(tmp_path / "state"), cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "--failed" in result.stderr and "--in-doubt" in result.stderr


def test_retry_lost_polls_again_reopens_and_collects_what_the_provider_still_knows(tmp_path: Path,
                                                                                  provider: ProviderFactory) -> None:
    """`runner retry --lost`: a lost job whose task still exists is collected; one still unknown is reported, stays lost."""
    import sqlite3

    from runner.ledger import open_ledger

    sim = provider(task_seconds=0.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 3
    with open_ledger(state) as ledger:  # e.g. marked lost during an outage with a wrong clock
        keys = [job.key for job in ledger.iter_jobs("trio")]
        for key in keys:
            ledger.mark_lost(key, reason="the provider no longer knows the task (TASK_NOT_FOUND)")
    with sqlite3.connect(state / "ledger.db") as db:  # one task the provider really forgot
        db.execute("UPDATE jobs SET task_id = 'forgotten-task' WHERE key = ?", (keys[0],))
    assert counts(state) == {"lost": 3}
    result = run_cli("retry", str(manifest), "--state", str(state), "--lost", "--base-url", sim.base_url, cwd=tmp_path)
    assert result.code == 1, str(result)  # one job is still lost
    assert "2 lost job(s) reopened" in result.stdout and "forgotten-task" in result.stdout, str(result)
    assert counts(state) == {"done": 2, "lost": 1}
    assert sim.accepted() == 3  # nothing paid again
