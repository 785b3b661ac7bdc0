"""Every exit code the CLI can return is documented: in the README's two tables and in `runner --help`."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

import runner.cli.common as common
from runner.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _codes() -> dict[str, int]:
    return {name: value for name, value in vars(common).items() if name.startswith("EXIT_") and isinstance(value, int)}


def _section(text: str, title: str) -> str:
    start = text.index(title)
    following = re.search(r"^#{2,3} ", text[start + len(title):], re.MULTILINE)
    return text[start: start + len(title) + (following.start() if following else len(text))]


def test_runner_cli_common_names_every_exit_code_130_included() -> None:
    """0, 1, 2, 3, 4, 5, 6, 75 and 130 (a second stop signal): nothing returned elsewhere is missing here."""
    assert sorted(_codes().values()) == [0, 1, 2, 3, 4, 5, 6, 75, 130]


def test_the_readme_lists_every_exit_code_in_both_tables() -> None:
    """The 'Exit codes' summary and the operator's table ('What each exit code means') list each code."""
    text = README.read_text(encoding="utf-8")
    summary = _section(text, "### Exit codes")
    operator = text[text.index("What each exit code means"):]
    rows = set(re.findall(r"^\| (\d+) \|", operator, re.MULTILINE))
    for name, code in _codes().items():
        assert f"`{code}`" in summary, f"{name} = {code} is not in the README's 'Exit codes' section"
        assert str(code) in rows, f"{name} = {code} has no row in the README's operator table"


def test_runner_help_lists_every_exit_code() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    epilog = result.output[result.output.index("Exit codes:"):]
    for name, code in _codes().items():
        assert re.search(rf"(^|\s){code}\s", epilog), f"{name} = {code} is not in `runner --help`"


def test_runner_help_says_exit_5_is_also_a_postgresql_ledger_out_of_reach() -> None:
    """Every command exits 5 when its PostgreSQL ledger's server cannot be reached as it starts (ec204f1); the help's
    summary said only 'provider unreachable (network, --base-url)', so `runner status` exiting 5 pointed a reader at
    the provider (the README walk, 2026-12-05)."""
    result = CliRunner().invoke(main, ["--help"])
    epilog = result.output[result.output.index("Exit codes:"):]
    five = epilog[epilog.index(" 5  "):epilog.index(" 6  ")]
    assert "ledger" in five and "--ledger" in five, five
