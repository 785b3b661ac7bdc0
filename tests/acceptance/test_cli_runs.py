"""Run history and spend (issue 12, item 2a): `runner runs` and the spend lines of `runner status`,
on the real demo batch of test_operator_batch (4 done, 2 failed, 1 in doubt: 7 paid submits)."""

from __future__ import annotations

import json
import shlex

import pytest
from test_operator_batch import DEMO, Batch, Invoke, batch, cli

__all__ = ["batch", "cli"]  # the fixtures, imported for pytest

SPENT = 0.56 * 6 + 0.84  # every created task, the one in doubt included


def test_runs_lists_the_run_with_its_figures(cli: Invoke, batch: Batch) -> None:
    result = cli("runs", DEMO, "--state", batch.state, "--json")
    assert result.exit_code == 0, result.output
    (run,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert run["argv"][1:3] == ["run", str(DEMO)] and run["exit_code"] == 4
    assert (run["submitted"], run["done"], run["failed"]) == (7, 4, 2)
    assert run["estimated_spent_usd"] == pytest.approx(SPENT)
    assert run["duration_s"] > 0 and run["ended_at"] >= run["started_at"]
    text = cli("runs", DEMO, "--state", batch.state)
    assert text.exit_code == 0
    header, row = text.stdout.splitlines()[:2]
    assert header.split()[:8] == ["run", "started", "took", "exit", "submitted", "done", "failed", "est."]
    assert row.split()[0] == "#1" and f"{SPENT:.2f}" in row
    assert f"estimated spend {SPENT:.2f} USD" in text.stdout


def test_runs_without_a_ledger_says_so(cli: Invoke, tmp_path: object) -> None:
    result = cli("runs", "--state", tmp_path)
    assert result.exit_code == 2 and "no ledger at" in result.stderr


def test_status_shows_spend_by_model_and_by_run(cli: Invoke, batch: Batch) -> None:
    data = json.loads(cli("status", DEMO, "--state", batch.state, "--json").stdout)
    assert data["estimated_spent_by_model_usd"] == {"kling-v3.0-pro-t2v": pytest.approx(SPENT)}
    assert [run["submitted"] for run in data["runs"]] == [7]
    text = cli("status", DEMO, "--state", batch.state).stdout
    lines = {line.split("  ")[1]: line.split("  ")[-1].strip() for line in text.splitlines()
             if line.startswith("  estimated spend by")}
    assert lines == {"estimated spend by model": f"kling-v3.0-pro-t2v {SPENT:.2f} USD",
                     "estimated spend by run": f"#1 {SPENT:.2f} USD (latest first;"
                                               f" `runner runs {shlex.join([str(DEMO), '--state', str(batch.state)])}`"
                                               " lists them)"}, text


def test_plan_forecasts_wall_time_from_the_ledgers_task_time(cli: Invoke, batch: Batch) -> None:
    data = json.loads(cli("plan", DEMO, "--state", batch.state, "--json", "--concurrency", "2").stdout)
    forecast = data["forecast"]
    assert forecast["task_seconds_learnt_from"] == 4 and forecast["task_seconds"] < 30, "the simulator's tasks are quick"
    assert (forecast["jobs"], forecast["concurrency"], forecast["fits"]) == (0, 2, None)
    fresh = cli("plan", DEMO, "--state", batch.state.parent / "fresh", "--max-runtime", "600", "--concurrency", "2")
    assert fresh.exit_code == 0, fresh.output
    assert "would take about 20m00s (concurrency bound; concurrency 2" in fresh.stdout
    assert "warning: that does not fit in --max-runtime 10m00s: about 4 of 7 job(s) would finish" in fresh.stdout
