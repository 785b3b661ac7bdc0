"""Start-up (issue 14): `runner --version` and `runner --help` import no command and no heavy library.

Which modules are imported is asserted, never a timing (timings are bench/startup.py's figures).
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from runner.cli import COMMANDS, main

HEAVY = ("httpx", "anyio", "pydantic", "sqlite3", "sqlite_utils", "psycopg", "yaml", "runner.simulator", "runner.engine",
         "runner.ledger", "runner.manifest", "runner.service.running", "runner.client.connection", "runner.jobs")

PROBE = """
import json, sys
sys.argv = ["runner", *json.loads(sys.argv[1])]
from runner._entry import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def imported_by(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, timeout=60,
                          check=False)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_version_and_help_import_nothing_heavy(args: tuple[str, ...]) -> None:
    modules = imported_by(*args)
    assert "click" in modules  # the probe saw the CLI
    loaded = sorted(name for name in modules for heavy in HEAVY if name == heavy or name.startswith(heavy + "."))
    assert loaded == []
    assert not any(name.startswith("runner.cli.") and name not in {"runner.cli.common", "runner.cli.group",
                                                                      "runner.cli.output"} for name in modules)


def test_a_command_imports_its_own_module_only() -> None:
    modules = imported_by("simulate", "--help")
    assert "runner.cli.sim" in modules
    assert "runner.cli.run" not in modules and "runner.cli.report" not in modules


def test_the_table_says_each_commands_own_name_and_help() -> None:
    """The lazy table's one-line help (shown by `runner --help`) is the command's own."""
    ctx = click.Context(main)
    for name, where in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=1000) == where.short_help, name
