"""Every example in every command's `--help` works as printed (exit 0), run in order in a clone's layout against the
simulator on a loopback port (NOVITA_BASE_URL: the user's environment here) — with real job keys where an example
shows a made-up one, and without what follows a pipe or a redirect. An example that cannot run here is listed in
SKIPPED with why, so a new one runs unless someone says why it cannot.

`test_help.py` checks that each help has an example; this runs them.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import click
from click.testing import CliRunner

from runner.cli import main
from runner.ledger import open_ledger

from test_cli_support import ProviderFactory, provider, run_cli

__all__ = ["provider"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = ("--sim-task-seconds", "0")
FAST_ENV = {"RUNNER_RPM": "none", "RUNNER_POLL_RPM": "none", "RUNNER_POLL_INTERVAL": "0.05",
            "RUNNER_BUDGET_USD": "100"}  # the demo's own $6 is spent by the review loop's examples
# The order a user would try them in: the batch first, then looking at it, then the review loop.
ORDER = ("runner", "run", "plan", "status", "ls", "show", "runs", "export", "report", "verify", "accept", "reject",
         "regenerate", "retry", "collect", "ledger reopen")
SKIPPED = {
    "adopt": "needs a job in doubt and the id of the task its submit created, or one held back with a video at its name",
    "review": "serves a page until Ctrl-C",
    "top": "watches until Ctrl-C",
    "simulate": "serves until Ctrl-C",
    "ledger": "copies to a PostgreSQL server",
    "ledger copy": "copies to a PostgreSQL server",
    "submit": "a cron line of a manifest of the reader's",
}
WATCHING = ("--watch",)  # status --watch: until Ctrl-C
ELSEWHERE = ("postgresql://",)  # an example of a PostgreSQL ledger names a server this test has none of
# Examples of a skipped command that need nothing it skips for: they run. `adopt batch.yaml --held-back --dry-run`
# named a manifest no clone has (exit 2 as printed: the newcomer's walk, 2026-12-06).
RUN_ANYWAY = ("--held-back --dry-run",)
# Made-up keys in the examples -> which of the demo's jobs (by planning order) stands for each.
KEYS = {"3f2a9c1e": 0, "3f2a9c1e0b7d": 0, "53a6753e": 1, "53a6753e4fbd5c6b9cfe": 1, "3f2a": 0, "9b07": 2, "c1d2": 3}
PATHS = {"/srv/videos/state": "state"}


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


def _examples() -> list[tuple[str, str]]:
    """(command, example line) for every command, in ORDER, then the rest."""
    found: list[tuple[str, str]] = []
    for path in [(), *_commands(main)]:
        text = CliRunner().invoke(main, [*path, "--help"]).output
        block = text.split("Example", 1)[1].split("\n\n", 1)[0]
        name = " ".join(path) or "runner"
        found += [(name, line.strip()) for line in block.splitlines()[1:] if line.strip()]
    rank = {name: at for at, name in enumerate(ORDER)}
    return sorted(found, key=lambda pair: rank.get(pair[0], len(ORDER)))


def _commands_of(line: str, keys: list[str]) -> list[list[str]]:
    """The runner commands of one example line: `&&` splits it; a pipe or redirect ends a command."""
    words = shlex.split(line, comments=True)
    commands: list[list[str]] = [[]]
    cut = False
    for word in words:
        if word == "&&":
            commands.append([])
            cut = False
        elif word in ("|", ">") or cut:
            cut = True
        else:
            commands[-1].append(PATHS.get(word, keys[KEYS[word]][:len(word)] if word in KEYS else word))
    return [command for command in commands if command]


def test_every_help_example_works_as_printed(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / "state").mkdir()
    env = {"NOVITA_BASE_URL": sim.base_url, **FAST_ENV}
    for batch in ("manifests/demo.yaml", "manifests/cities.yaml"):  # the reader's batches, in state/
        made = run_cli("run", batch, "--budget", "none", cwd=tmp_path, env=env)
        assert made.code == 0, str(made)
    with open_ledger(tmp_path / "state", readonly=True) as ledger:
        keys = [job.key for job in ledger.iter_jobs("demo-timelapses")]
    ran, ran_retry = 0, False
    for command, line in _examples():
        skipped = command in SKIPPED and not any(part in line for part in RUN_ANYWAY)
        if skipped or not line.startswith("runner ") or any(flag in line for flag in (*WATCHING, *ELSEWHERE)):
            continue
        if command == "retry" and not ran_retry:  # two jobs the provider failed, as retry's examples have them
            ran_retry = True
            with open_ledger(tmp_path / "state") as ledger, ledger._conn.write() as db:
                for key in (keys[KEYS["3f2a"]], keys[KEYS["9b07"]]):
                    db.execute("UPDATE jobs SET state = 'failed', reason = 'TASK_FAILED', error = 'upstream timeout'"
                               " WHERE key = ?", (key,))
        for words in _commands_of(line, keys):
            if words[0] != "runner":  # xdg-open …
                continue
            args = [*words[1:], *QUICK] if "--simulate" in words else words[1:]
            result = run_cli(*args, cwd=tmp_path, env=env)
            assert result.code == 0, f"`runner {command} --help`: {line}\n{result}"
            ran += 1
    assert ran >= 35, ran
