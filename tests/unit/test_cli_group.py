"""The global flags of `runner` may follow the subcommand: they are moved in front of it before click parses."""

from __future__ import annotations

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
    ],
)
def test_global_flags_move_before_the_subcommand(given: list[str], parsed: list[str]) -> None:
    assert globals_first(given) == parsed
