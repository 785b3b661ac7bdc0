"""Settings reach the engine in the documented order: flag > environment > manifest limits > default."""

from __future__ import annotations

from pathlib import Path

from test_cli_support import (
    SIX_JOBS,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def test_concurrency_comes_from_flag_then_env_then_manifest(tmp_path: Path, provider: ProviderFactory) -> None:
    """`submit` fills exactly the concurrency that wins: --concurrency over RUNNER_CONCURRENCY over limits. Each case
    a provider of its own: three new ledgers of one batch at one provider would pay for it three times (refused)."""
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    cases = [
        ("flag", ["--concurrency", "3"], {"RUNNER_CONCURRENCY": "2"}, 3),
        ("env", [], {"RUNNER_CONCURRENCY": "2"}, 2),
        ("manifest", [], {"RUNNER_CONCURRENCY": ""}, 1),  # blank counts as unset
    ]
    for label, flags, env, expected in cases:
        state, sim = tmp_path / f"state-{label}", provider(task_seconds=60.0)
        result = run_cli(*run_args("submit", manifest, state, *sim.engine_args(*flags)), cwd=tmp_path, env=env)
        assert result.code == 3, str(result)
        assert counts(state, "six") == {"running": expected, "pending": 6 - expected}, label


def test_bad_environment_value_is_a_usage_error_naming_the_variable(tmp_path: Path,
                                                                    provider: ProviderFactory) -> None:
    """RUNNER_RPM=fast (or RUNNER_READ_TIMEOUT=soon) exits 2 naming the variable, before anything is sent."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    for name, value in (("RUNNER_RPM", "fast"), ("RUNNER_READ_TIMEOUT", "soon")):
        result = run_cli(*run_args("run", manifest, tmp_path / "state", "--base-url", sim.base_url), cwd=tmp_path,
                         env={name: value})
        assert result.code == 2, str(result)
        assert name in result.stderr
    assert sim.accepted() == 0


def test_plan_reads_the_budget_a_run_would_use(tmp_path: Path) -> None:
    """RUNNER_BUDGET_USD wins over the manifest's limits for `plan` as for `run` (operator sweep, 2026-12-04:
    plan said the manifest's 5 USD while the run stopped at 0.20)."""
    manifest = write_manifest(tmp_path, SIX_JOBS.replace("limits:\n", "limits:\n  budget_usd: 50\n"), name="six.yaml")
    said = run_cli("plan", str(manifest), "--json", cwd=tmp_path, env={"RUNNER_BUDGET_USD": "0.2"})
    assert said.code == 0 and '"budget_usd": 0.2' in said.stdout, str(said)
    unset = run_cli("plan", str(manifest), "--json", cwd=tmp_path, env={"RUNNER_BUDGET_USD": "none"})
    assert unset.code == 0 and '"budget_usd": null' in unset.stdout, str(unset)
    manifest_only = run_cli("plan", str(manifest), "--json", cwd=tmp_path)
    assert '"budget_usd": 50' in manifest_only.stdout, str(manifest_only)


def test_a_misspelt_variable_is_named_with_the_one_it_probably_meant(tmp_path: Path) -> None:
    """RUNNER_BUDGET=0.2 sets no budget (runner reads RUNNER_BUDGET_USD): every command says so (operator sweep,
    2026-12-04: it was silently ignored)."""
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    said = run_cli("plan", str(manifest), cwd=tmp_path, env={"RUNNER_BUDGET": "0.2"})
    assert said.code == 0, str(said)
    assert "RUNNER_BUDGET is set, but runner reads no such variable; did you mean RUNNER_BUDGET_USD?" in said.stderr
