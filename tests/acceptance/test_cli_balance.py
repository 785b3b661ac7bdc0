"""The account balance before a batch (issue 12, item 2c), against a simulator on loopback.

A run whose remaining estimate passes the balance is refused before anything is sent (exit 2,
with the figures and a --budget that fits); a --budget within the balance runs; an account whose
balance cannot be read gets a warning and runs.
"""

from __future__ import annotations

from pathlib import Path

from test_cli_support import THREE_JOBS_USD, ProviderFactory, counts, provider, run_args, run_cli, write_manifest

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
