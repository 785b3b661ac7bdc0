"""Each builder of a pasteable `runner …` hint carries the ledger's flags as `ledger_words` says them: ``--state`` as
given, a PostgreSQL ledger's ``--ledger`` without its password (or ``"$RUNNER_LEDGER_URL"``, the variable holding it).
Printed without them, a PostgreSQL operator's pasted hint opened the SQLite ledger of ``--state`` (or ./state)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.service.hints import budget_stop, next_command, runner_command
from runner.service.state import use_ledger_url

SECRET = "pw-not-printed"
URL = f"postgresql://u:{SECRET}@db.example:5433/batch?sslmode=require"
SHOWN = "postgresql://u@db.example:5433/batch?sslmode=require"


@pytest.fixture(autouse=True)
def _no_chosen_ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("RUNNER_LEDGER_URL", raising=False)
    use_ledger_url(None)
    yield
    use_ledger_url(None)


def test_sqlite_hints_stay_as_they_were() -> None:
    assert next_command("run", "m.yaml") == "next: runner run m.yaml"
    assert runner_command("retry", "m.yaml", state_dir=Path("st 1")) == ("runner retry m.yaml --state 'st 1'", "")


def test_the_ledger_given_is_said_without_its_password_and_the_note_says_where_it_comes_from() -> None:
    line = next_command("run", "my m.yaml", state_dir=Path("videos"), provider="simulator", budget_usd="2",
                        ledger=URL, environ={}, note="a note")
    command, note = line.removeprefix("next: ").split("   (")
    assert shlex.split(command) == ["runner", "run", "my m.yaml", "--state", "videos", "--ledger", SHOWN,
                                    "--simulate", "--budget", "2"]
    assert SECRET not in line and note.startswith("a note; ") and "PGPASSWORD" in note


def test_the_ledger_the_cli_was_given_is_the_default() -> None:
    """The CLI's --ledger (a contextvar the commands set): reject's, retry's, adopt's hints take it unasked."""
    use_ledger_url("postgresql://u@h/db")
    assert runner_command("regenerate", "m.yaml") == ("runner regenerate m.yaml --ledger postgresql://u@h/db", "")


def test_the_variable_holding_the_password_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_LEDGER_URL", URL)
    command, note = runner_command("collect", state_dir=Path("v"))
    assert command == 'runner collect --state v --ledger "$RUNNER_LEDGER_URL"' and note == ""


def test_the_budget_stop_names_the_ledger() -> None:
    said = budget_stop("trio", "--budget 0.4", left=2, left_usd=0.67, spent_usd=0.34, manifest_path=Path("t.yaml"),
                       state_dir=Path("v"), provider=None, ledger=URL, environ={})
    command = said.split("`")[1]
    assert shlex.split(command) == ["runner", "run", "t.yaml", "--state", "v", "--ledger", SHOWN, "--budget", "1.01"]
    assert SECRET not in said and "PGPASSWORD" in said.split("`")[2]

