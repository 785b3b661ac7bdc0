"""Every command explains itself with an example, and user mistakes get one clear line, never a traceback."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from runner.cli import main
from runner.ledger import open_ledger

from test_cli_support import run_cli

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "manifests" / "demo.yaml"


def walk(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the click group, sub-groups included."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from walk(command, (*prefix, name))


COMMANDS = list(walk(main))


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    """The CLI installs signal handlers and configures logging; undo both after each test."""
    signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger("runner")
    saved = (root.handlers[:], root.level, root.propagate)
    yield
    for sig, handler in signals.items():
        signal.signal(sig, handler)
    root.handlers[:], root.level, root.propagate = saved


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_group_knows_the_operator_commands() -> None:
    """The walk finds every command an operator needs (so the help test below covers them)."""
    names = {path[-1] for path in COMMANDS}
    assert {"run", "submit", "collect", "plan", "status", "ls", "show", "export", "report", "retry",
            "simulate"} <= names


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "runner")
def test_every_command_help_carries_an_example(path: tuple[str, ...]) -> None:
    """`runner … --help` exits 0 and shows at least one example of the command in use."""
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`runner {' '.join(path)} --help` has no example"
    name = path[-1] if path else "runner"
    example_lines = result.output.split("Example", 1)[1].splitlines()[1:]
    assert any(f"runner {name}" in line or f"runner {' '.join(path)}" in line or (name == "runner" and "runner " in line)
               for line in example_lines), \
        f"the example of `{' '.join(path)}` does not show the command"


def _one_clear_line(result: Result) -> str:
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("runner: error: ")
    return lines[0]


def test_unknown_job_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """show of a key nobody knows says so in one line and exits 2."""
    with open_ledger(tmp_path):  # a ledger without that job (with none, show says there is no ledger)
        pass
    result = invoke("show", "0123abc", "--state", tmp_path)
    assert result.exit_code == 2
    assert "no job has the key, key prefix or task_id '0123abc'" in _one_clear_line(result)


def test_a_bad_manifest_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    """A manifest mistake names the file and line in one line (exit 2), nothing sent."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.read_text().replace("\nprompt:", "\npromt:"))
    result = invoke("status", bad, "--state", tmp_path / "state")
    assert result.exit_code == 2
    line = _one_clear_line(result)
    assert "bad.yaml:" in line and "promt" in line


def _planned_demo(state: Path) -> None:
    """The demo planned into ``state`` (nothing sent): an export of it reads a ledger (one with none is refused)."""
    from runner import service

    service.prepare(DEMO, service.RunOptions(simulate=True, state_dir=state))


def test_an_unwritable_export_target_is_one_line(tmp_path: Path) -> None:
    """Exporting under a file (no folder can be made there) is a clear one-line error, not an OSError traceback (a
    folder not there yet is made: test_cli_export_records)."""
    _planned_demo(tmp_path / "state")
    (tmp_path / "a-file").write_text("x")
    result = invoke("export", DEMO, "--state", tmp_path / "state", "--to", tmp_path / "a-file" / "out.jsonl")
    assert result.exit_code == 2
    assert "cannot write" in _one_clear_line(result)


def test_ls_only_is_a_job_state(tmp_path: Path) -> None:
    """ls --only takes job states; a directory there is explained in one line, pointing at --state (issue 12:
    --state is the state directory in every command, ls included)."""
    result = invoke("ls", DEMO, "--only", tmp_path)
    assert result.exit_code == 2
    line = _one_clear_line(result)
    assert "is not a job state" in line and "--state" in line


def test_verbose_adds_the_cause_chain(tmp_path: Path) -> None:
    """With -v the same mistake also prints what caused it (the chain), still without a traceback."""
    _planned_demo(tmp_path / "state")
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-file" / "out.jsonl"
    quiet = invoke("export", DEMO, "--state", tmp_path / "state", "--to", target)
    verbose = invoke("-v", "export", DEMO, "--state", tmp_path / "state", "--to", target)
    assert quiet.exit_code == verbose.exit_code == 2
    assert "caused by" not in quiet.stderr
    assert "caused by FileExistsError" in verbose.stderr
    assert "Traceback" not in verbose.output


@pytest.mark.parametrize(("words", "meant"), [
    (("stauts", DEMO), "'status'"),
    (("retyr", DEMO, "--failed"), "'retry'"),
    (("--stat", "state", "status", DEMO), "'--state'"),
    (("--ledgr", "postgresql://h/db", "status", DEMO), "'--ledger'"),
], ids=["command", "command-2", "state-before-the-command", "ledger-before-the-command"])
def test_a_misspelt_command_or_option_before_it_gets_a_did_you_mean(tmp_path: Path, words: tuple[object, ...],
                                                                     meant: str) -> None:
    """`runner stauts m.yaml` said "No such command 'stauts'." (click suggests only among the commands imported,
    and runner imports one only when it runs) and `runner --stat s status m.yaml` "No such option '--stat'.", with
    no hint, where a misspelt option after the command gets click's "Did you mean". A real process: in this one the
    commands are imported already."""
    result = run_cli(*map(str, words), cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "Did you mean" in result.stderr and meant in result.stderr, str(result)


@pytest.mark.parametrize("option", ["--simulate", "--budget=5", "--concurrency"])
def test_a_command_option_before_the_command_says_where_it_goes(tmp_path: Path, option: str) -> None:
    """`runner --simulate run m.yaml` said "No such option '--simulate'. Did you mean '--state'?" (and `--budget`:
    "Did you mean '--quiet'?"): only --state and --ledger of a command's options may stand before it."""
    result = run_cli(option, "run", str(DEMO), cwd=tmp_path)
    assert result.code == 2, str(result)
    name = option.split("=")[0]
    assert f"{name} is an option of `runner run`: give it after the command" in result.stderr, str(result)
    assert "Did you mean" not in result.stderr, str(result)


@pytest.mark.parametrize("command", ["plan", "run", "status", "ls", "report", "review", "reject", "verify", "runs"])
def test_a_folder_given_as_the_manifest_names_the_manifests_in_it(tmp_path: Path, command: str) -> None:
    """`runner plan manifests` said "File 'manifests' is a directory." and no more: now it names the manifests there."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "b.yaml").write_text(DEMO.read_text(), encoding="utf-8")
    (folder / "a.yml").write_text(DEMO.read_text(), encoding="utf-8")
    extra = {"reject": ["k", "--reason", "r"], "report": ["--to", "out"]}.get(command, [])
    result = run_cli(command, "manifests", *extra, cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "manifests is a folder; give one manifest in it: manifests/a.yml, manifests/b.yaml" in result.stderr, \
        str(result)


_CRON_FIELDS = r"^(?:[\d*/,-]+\s+){5}"


def test_every_cron_line_shown_gives_the_key_and_the_commands_path() -> None:
    """A cron line of `run`, `submit` or `collect` — in the README or in a command's help — carries NOVITA_API_KEY
    and names runner by its path: cron gives a job neither the key of the user's shell nor a PATH beyond
    /usr/bin:/bin (pipx's ~/.local/bin, a virtualenv's bin). `runner submit --help` showed `cd /srv/videos && runner
    submit manifests/nightly.yaml`: copied into a crontab, every tick failed, "runner: not found" (the newcomer's
    walk, 2026-12-06)."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [line for block in re.findall(r"```cron\n(.*?)```", readme, re.S) for line in block.splitlines()]
    for path in COMMANDS:
        text = invoke(*path, "--help").output
        lines += [line.strip() for line in text.split("Example", 1)[1].split("\n\n", 1)[0].splitlines()[1:]]
    cron = [line for line in lines if re.match(_CRON_FIELDS, line)]
    paying = [line for line in cron if re.search(r"\brunner (?:-\S+ )*(?:run|submit|collect)\b", line)]
    assert len(paying) >= 4, cron  # the README's three lines and submit's example were found
    wrong = [line for line in paying
             if "NOVITA_API_KEY=" not in line or not re.search(r"\S/runner (?:-\S+ )*(?:run|submit|collect)\b", line)]
    assert not wrong, "\n".join(wrong)
