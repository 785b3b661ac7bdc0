"""Issue 12's CLI without traps, the logging part: `show` without a ledger, --log-json on every line (signals
included), cron-friendly plain logs (timestamps, a run header, no duplicated last line, repeats collapsed)."""

from __future__ import annotations

from pathlib import Path

from test_cli_support import (
    ProviderFactory,
    provider,
    run_cli,
)

__all__ = ["ProviderFactory", "provider"]  # the fixture, imported for pytest


def test_show_without_a_ledger_says_so_and_exits_2(tmp_path: Path) -> None:
    """`runner show KEY --state DIR` on a directory with no ledger: one line naming DIR, exit 2, nothing created."""
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    for where in (empty, tmp_path / "absent"):
        result = run_cli("show", "53a6753e", "--state", str(where), cwd=tmp_path)
        assert result.code == 2, str(result)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and str(where) in lines[0] and "no ledger" in lines[0], str(result)
        assert not (where / "ledger.db").exists()
