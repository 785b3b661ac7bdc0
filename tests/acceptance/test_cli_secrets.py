"""The API key never leaves the environment: not in the ledger, outputs, logs, exports or any output."""

from __future__ import annotations

from pathlib import Path

from test_cli_support import (
    SIX_JOBS,
    ProviderFactory,
    Result,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SECRET = "sk-DISTINCTIVE-7f3a9c1e5b2d4680-SECRET"
WRONG = "sk-ANOTHER-WRONG-KEY-0c4e8a2f6b1d3957"

# Faults that make error texts, attempts and events reach the ledger and the logs.
# (No 429s: with --rpm none the limiter would learn a very slow rate from them.)
NOISY = {"p_task_failed": 0.2, "p_gateway": 0.2, "p_poll_error": 0.3, "p_expired_url": 0.3,
         "p_truncated": 0.2, "seed": 7}


def _assert_clean(results: list[Result], state: Path, *secrets: str) -> None:
    texts = [(f"{' '.join(r.args)} ({stream})", text) for r in results
             for stream, text in (("stdout", r.stdout), ("stderr", r.stderr))]
    for where, text in texts:
        for secret in secrets:
            assert secret not in text, f"the API key appears in the {where}"
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name == "ledger.db" for p in files) and any(p.suffix == ".mp4" for p in files), files
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"the API key appears in {path}"


def test_key_never_appears_in_ledger_logs_exports_or_output(tmp_path: Path, provider: ProviderFactory) -> None:
    """Refused, noisy and clean runs with -v / --log-json leave no trace of any key anywhere we can look."""
    sim = provider(api_key=SECRET, **NOISY)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    state = tmp_path / "state"
    engine = sim.engine_args("--concurrency", "6")
    refused = run_cli("-v", "--log-json", *run_args("run", manifest, state, *engine), cwd=tmp_path, key=WRONG)
    assert refused.code == 2, str(refused)
    assert "NOVITA_API_KEY" in refused.stderr  # the variable is named, its value never
    noisy = run_cli("-v", "--log-json", *run_args("run", manifest, state, *engine), cwd=tmp_path, key=SECRET)
    assert noisy.code in (0, 1, 4), str(noisy)
    assert '"level"' in noisy.stderr, "expected JSON log lines"
    sim.sim.configure(**{knob: 0.0 for knob in NOISY if knob.startswith("p_")})
    calm = run_cli("-v", *run_args("run", manifest, state, *engine, "--in-doubt", "resubmit"), cwd=tmp_path,
                   key=SECRET)
    assert calm.code in (0, 1), str(calm)
    results = [refused, noisy, calm, *[
        run_cli("-v", "status", str(manifest), "--state", str(state), "--json", cwd=tmp_path, key=SECRET),
        run_cli("-v", "export", str(manifest), "--state", str(state), "--format", "jsonl", cwd=tmp_path, key=SECRET),
        run_cli("-v", "export", str(manifest), "--state", str(state), "--format", "csv",
                "--to", str(state / "export.csv"), cwd=tmp_path, key=SECRET),
    ]]
    responses = sim.sim.stats()["responses"]
    assert responses.get("submit:ok", 0) >= 1 and sum(responses.values()) > responses.get("submit:ok", 0)
    _assert_clean(results, state, SECRET, WRONG)
