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
    """`submit` fills exactly the concurrency that wins: --concurrency over RUNNER_CONCURRENCY over limits."""
    sim = provider(task_seconds=60.0)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    cases = [
        ("flag", ["--concurrency", "3"], {"RUNNER_CONCURRENCY": "2"}, 3),
        ("env", [], {"RUNNER_CONCURRENCY": "2"}, 2),
        ("manifest", [], {"RUNNER_CONCURRENCY": ""}, 1),  # blank counts as unset
    ]
    for label, flags, env, expected in cases:
        state = tmp_path / f"state-{label}"
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
