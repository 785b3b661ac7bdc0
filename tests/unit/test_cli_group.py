"""The global flags of `runner` may follow the subcommand: they are moved in front of it before click parses."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from runner.cli.group import globals_first


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["run", "m.yaml", "-q"], ["-q", "run", "m.yaml"]),
        (["run", "m.yaml", "--quiet", "--budget", "3"], ["--quiet", "run", "m.yaml", "--budget", "3"]),
        (["-v", "plan", "m.yaml", "--log-json"], ["-v", "--log-json", "plan", "m.yaml"]),
        (["plan", "--", "-q"], ["plan", "--", "-q"]),  # after --, an argument
        (["run", "m.yaml", "--", "-v"], ["run", "m.yaml", "--", "-v"]),
        (["--version"], ["--version"]),
        ([], []),
        (["--", "run", "-q"], ["--", "run", "-q"]),
        # several short global flags in one word, as click reads them before the subcommand: after it, the
        # subcommand said "No such option '-q'" (the newcomer's walk, 2026-12-06)
        (["plan", "m.yaml", "-qv"], ["-qv", "plan", "m.yaml"]),
        (["run", "m.yaml", "-vq", "--budget", "-q3"], ["-vq", "run", "m.yaml", "--budget", "-q3"]),
    ],
)
def test_global_flags_move_before_the_subcommand(given: list[str], parsed: list[str]) -> None:
    assert globals_first(given) == parsed


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["--state", "s", "status", "m.yaml"], ["status", "--state", "s", "m.yaml"]),
        (["-q", "--ledger=postgresql://h/db", "run", "m.yaml", "-v"],
         ["-q", "-v", "run", "--ledger=postgresql://h/db", "m.yaml"]),
        (["--state", "s", "--ledger", "u", "ls", "m.yaml", "--", "x"],
         ["ls", "--state", "s", "--ledger", "u", "m.yaml", "--", "x"]),
        (["--state", "s"], ["--state", "s"]),  # no subcommand: as given, for click to say so
        (["--state"], ["--state"]),
        (["--", "--state", "s", "run"], ["--", "--state", "s", "run"]),
    ],
)
def test_state_and_ledger_before_the_subcommand_move_after_it(given: list[str], parsed: list[str]) -> None:
    """The review sweep: `runner --state X status m.yaml` said "No such option '--state'" while -q worked in both
    places."""
    assert globals_first(given) == parsed


def test_state_before_the_ledger_command_says_what_to_type() -> None:
    """`runner --state X ledger reopen` said only "No such option '--state'" (moved after `ledger`, whose
    commands take the location as an argument): it now says the command to type."""
    from click.testing import CliRunner

    from runner.cli import main

    result = CliRunner().invoke(main, ["--state", "st ate", "ledger", "reopen"])
    assert result.exit_code == 2, result.output
    assert "No such option" not in result.output
    assert "runner ledger reopen 'st ate'" in result.output, result.output
    copy = CliRunner().invoke(main, ["--ledger=postgresql://h/db", "ledger", "copy", "state2"])
    assert "runner ledger copy postgresql://h/db state2" in copy.output, copy.output
    given = CliRunner().invoke(main, ["--state", "s", "ledger", "copy", "a", "b"])  # both given: only drop --state
    assert "type: runner ledger copy a b" in given.output, given.output


@pytest.mark.parametrize(
    ("given", "every"),
    [
        (["--watch", "{m}"], 2.0),  # "'m.yaml' is not a valid float range" (exit 2): the newcomer's walk, 2026-12-06
        (["--watch", "{m}", "--json"], 2.0),
        (["{m}", "--watch"], 2.0),
        (["--watch", "5", "{m}"], 5.0),
        (["{m}", "--watch", "0.5"], 0.5),
        (["{m}"], None),
    ],
)
def test_status_watch_before_the_manifest_leaves_it_the_manifest(given: list[str], every: float | None,
                                                                 tmp_path: Path) -> None:
    """`--watch [SECONDS]` takes a value only if one is given: the manifest after it is the manifest."""
    from runner.cli.inspect import status_cmd

    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: m\n", encoding="utf-8")
    context = status_cmd.make_context("status", [word.format(m=manifest) for word in given])
    assert (context.params["every"], context.params["manifest"]) == (every, manifest)


def test_status_watch_of_a_number_out_of_range_says_so() -> None:
    from runner.cli.inspect import status_cmd

    with pytest.raises(click.BadParameter, match="not in the range"):
        status_cmd.make_context("status", ["--watch", "0", "m.yaml"])
