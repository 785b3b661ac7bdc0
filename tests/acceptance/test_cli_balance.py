"""The account balance before a batch (issue 12, item 2c), against a simulator on loopback.

A run whose remaining estimate passes the balance is refused before anything is sent (exit 2,
with the figures and a --budget that fits); a --budget within the balance runs; an account whose
balance cannot be read gets a warning and runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_support import (
    THREE_JOBS,
    THREE_JOBS_USD,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def test_a_batch_the_balance_cannot_pay_is_refused_with_the_figures(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(balance_usd=0.5)
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert result.code == 2, str(result)
    assert sim.accepted() == 0 and counts(tmp_path / "state") == {"pending": 3}
    line = result.stderr.strip().splitlines()[-1]
    assert f"the account balance is 0.50 USD but the 3 job(s) left to submit may cost {THREE_JOBS_USD:.2f} USD" in line
    assert "nothing was sent" in line and "--budget 0.50" in line
    within = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args("--budget", "0.5")), cwd=tmp_path)
    assert within.code == 3, str(within)  # the budget stops it, as ever
    assert sim.accepted() == 1


def test_an_unreadable_balance_is_a_warning_never_a_refusal(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(balance_usd=None)
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "could not read the account balance" in result.stderr and sim.accepted() == 3


def test_a_balance_that_covers_the_batch_says_so(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(balance_usd=100)
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert f"account balance 100.00 USD covers the {THREE_JOBS_USD:.2f} USD" in result.stderr


def test_a_balance_line_under_a_budget_says_the_budget_caps_the_figure(tmp_path: Path, provider: ProviderFactory) -> None:
    """Under a --budget smaller than the jobs left, the line read "covers the 0.16 USD (estimate) the jobs left to
    submit may cost" of jobs that may cost 15.68 USD (brief Q): the figure is what the budget lets the run spend."""
    sim = provider(balance_usd=100)
    manifest = write_manifest(tmp_path)
    budget = f"{THREE_JOBS_USD / 2:.2f}"
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args("--budget", budget)), cwd=tmp_path)
    assert result.code == 3, str(result)
    assert (f"account balance 100.00 USD covers the {float(budget):.2f} USD (estimate) the budget lets this run spend"
            f" (the 3 job(s) left may cost {THREE_JOBS_USD:.2f} USD)") in result.stderr, str(result)


def test_runs_shows_the_balance_each_run_read_and_its_drop(tmp_path: Path, provider: ProviderFactory) -> None:
    """The provider's own figure of what was spent: the balance read at each run's start, and its drop."""
    sim = provider(balance_usd=100)
    manifest = write_manifest(tmp_path)
    assert run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path).code == 0
    sim.sim.configure(balance_usd=98.99)
    write_manifest(tmp_path, THREE_JOBS.replace("[cat, dog, owl]", "[cat, dog, owl, fox]"))
    assert run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path).code == 0
    listed = run_cli("runs", str(manifest), "--state", str(tmp_path / "state"), "--json", cwd=tmp_path)
    newest, oldest = (json.loads(line) for line in listed.stdout.splitlines())
    assert (newest["account_balance_at_start_usd"], newest["account_balance_drop_to_next_run_usd"]) == (98.99, None)
    assert (oldest["account_balance_at_start_usd"], oldest["account_balance_drop_to_next_run_usd"]) == (100.0, 1.01)
    assert (oldest["submitted"], newest["submitted"]) == (3, 1)
    text = run_cli("runs", str(manifest), "--state", str(tmp_path / "state"), cwd=tmp_path).stdout
    assert "100.00 (-1.01)" in text and "98.99" in text
