"""A PostgreSQL ledger that lost commits a runner saw is not a success to a timer (hunt-pg2, item 1).

``LedgerLostCommits`` exited 3, "stopped with work outstanding", which the shipped systemd unit takes as success
(``SuccessExitStatus=3 75``): a nightly timer went on, and nobody was told, while the ledger had lost write-aheads
and task ids — the next write-ahead pays for those jobs again. It is exit 2 now, as a SQLite ledger older than its
state directory's mark (``LedgerOutdated``): someone must compare the ledger with the provider's console first."""

from __future__ import annotations

import configparser
from pathlib import Path

from runner.errors import LedgerLostCommits, LedgerOutdated
from runner.service.outcome import EXIT_USAGE, exit_code_for

SERVICE = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "runner-videos.service"


def _success_statuses() -> set[int]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(SERVICE.read_text(encoding="utf-8"))
    return {0, *(int(code) for code in parser["Service"]["SuccessExitStatus"].split())}


def test_a_ledger_that_lost_commits_is_exit_2_as_an_outdated_one_and_no_success_to_the_shipped_unit() -> None:
    lost = LedgerLostCommits("the PostgreSQL server of the ledger postgresql://me@db/x lost changes")
    assert exit_code_for(lost) == exit_code_for(LedgerOutdated("older than its mark")) == EXIT_USAGE
    assert exit_code_for(lost) not in _success_statuses()
