"""A hostile or misconfigured provider: its data never stores the key, never breaks a run, never costs money."""

from __future__ import annotations

from pathlib import Path

from runner.ledger import open_ledger

from test_cli_support import (
    FAST,
    THREE_JOBS,
    ProviderFactory,
    counts,
    export_jsonl,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SECRET = "sk-HOSTILE-echoed-9d2b7c4e1a-KEY"


def test_a_provider_echoing_the_key_in_reasons_and_debug_info_stores_and_shows_no_key(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """FAILED reasons and debug_info quoting the key: ledger bytes, export, show and report hold no key."""
    sim = provider(api_key=SECRET, echo_key=True, p_task_failed=0.5, seed=0)  # seed 0: one of three fails
    manifest = write_manifest(tmp_path, THREE_JOBS)
    state = tmp_path / "state"
    run = run_cli("-v", *run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, key=SECRET)
    assert run.code == 1, str(run)
    assert counts(state) == {"done": 2, "failed": 1}
    rows = export_jsonl(tmp_path, manifest, state)
    failed = next(row for row in rows if row["state"] == "failed")
    assert "***" in str(failed), failed  # the echoed key was there, and was scrubbed
    outputs = [run.stdout, run.stderr, str(rows)]
    done = next(row for row in rows if row["state"] == "done")
    for key, flags in ((failed["key"], ()), (failed["key"], ("--json",)), (done["key"], ("--json",))):
        shown = run_cli("show", key, "--state", str(state), *flags, cwd=tmp_path, key=SECRET)
        assert shown.code == 0, str(shown)
        outputs += [shown.stdout, shown.stderr]
    report = run_cli("report", str(manifest), "--state", str(state), "--to", str(tmp_path / "report"),
                     cwd=tmp_path, key=SECRET)
    assert report.code == 0, str(report)
    outputs += [report.stdout, report.stderr]
    for text in outputs:
        assert SECRET not in text
    files = [p for p in [*state.rglob("*"), *(tmp_path / "report").rglob("*")] if p.is_file()]
    assert any(p.name == "ledger.db" for p in files) and any(p.suffix == ".html" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), f"the API key is stored in {path}"


def test_huge_numbers_and_an_implausible_task_id_from_the_provider_end_in_clear_outcomes(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """Absurd numbers in every task-result are read as unknown (all done); a 64 KB task_id holds the job in doubt."""
    sim = provider(huge_numbers=True)
    manifest = write_manifest(tmp_path, THREE_JOBS)
    state = tmp_path / "state"
    run = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert run.code == 0, str(run)
    assert counts(state) == {"done": 3}
    assert sim.sim.stats()["responses"].get("task_result:ok", 0) >= 3

    long_ids = provider(p_long_task_id=1.0)
    five = THREE_JOBS.replace("name: trio", "name: other").replace("[cat, dog, owl]", "[cat, dog, owl, fox, elk]")
    other = write_manifest(tmp_path, five, name="other.yaml")
    state = tmp_path / "state-long"
    # --new-ledger: its first three jobs are trio's, recorded in ./state (a ledger elsewhere knows them by their keys)
    run = run_cli(*run_args("run", other, state, *long_ids.engine_args(), "--concurrency", "1", "--new-ledger"),
                  cwd=tmp_path)
    assert run.code == 4, str(run)  # in doubt: a task may exist, and its id is shown to the operator
    assert counts(state, "other") == {"in_doubt": 3, "pending": 2}  # three in a row stop the run
    assert long_ids.accepted() == 3
    assert "implausible" in run.stderr and "65,5" in run.stderr
    exported = run_cli("export", str(other), "--state", str(state), "--format", "jsonl", cwd=tmp_path)
    assert exported.code == 0 and "implausible" in exported.stdout, str(exported)
    assert len(exported.stdout) < 10_000  # the raw id is kept shortened, not 64 KB


def test_a_wrong_base_path_stops_the_run_with_exit_2_and_leaves_every_job_pending_unpaid(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """`…/v3/async` or `/api` after the host: exit 2 naming the URL and --base-url; jobs pending, spent 0."""
    sim = provider()
    manifest = write_manifest(tmp_path, THREE_JOBS)
    for suffix in ("/v3/async", "/api"):
        state = tmp_path / f"state{suffix.replace('/', '-')}"
        args = [*run_args("run", manifest, state, "--base-url", sim.base_url + suffix), *FAST]
        run = run_cli(*args, cwd=tmp_path)
        assert run.code == 2, str(run)
        assert f"{sim.base_url}{suffix}/v3/async/kling-v3.0-pro-t2v" in run.stderr and "--base-url" in run.stderr
        assert counts(state) == {"pending": 3}
        with open_ledger(state, readonly=True) as ledger:
            assert ledger.spent_usd("trio") == 0
            jobs = list(ledger.iter_jobs("trio"))
            assert all(a.outcome == "refused" for job in jobs for a in ledger.attempts(job.key))
    retry = run_cli("retry", str(manifest), "--state", str(state), "--failed", cwd=tmp_path)
    assert "no failed jobs" in retry.stdout + retry.stderr, str(retry)  # nothing to pay again for
    assert sim.accepted() == 0
    fixed = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert fixed.code == 0 and counts(state) == {"done": 3}, str(fixed)

