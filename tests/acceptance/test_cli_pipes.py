"""A closed pipe is normal use: `runner plan m.yaml --list | head`, `runner run … 2>&1 | head -1`.

Read-only commands whose reader left end quietly with exit 0. A run whose progress channel
(stderr) is gone — a closed pipe, a closed terminal — goes on, finishes, and exits as it would have.
"""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runner import service

from test_cli_support import (
    KEY,
    MANY_JOBS,
    THREE_JOBS,
    ProviderFactory,
    clean_env,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def _closed_pipe() -> int:
    """The write end of a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    return write


def _run(args: list[str], *, cwd: Path, stdout: int, stderr: int) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=cwd, env=clean_env({"NOVITA_API_KEY": KEY}),
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    return proc.wait(60)


@pytest.fixture
def finished(tmp_path: Path, provider: ProviderFactory) -> tuple[Path, Path]:
    """A manifest whose three jobs are done, and its state directory."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    return manifest, state


@pytest.mark.parametrize("command", [
    ["plan"], ["plan", "--json"], ["plan", "--list"], ["status"], ["status", "--json"], ["ls"], ["ls", "--json"],
    ["export"], ["export", "--format", "csv"], ["export", "--format", "jsonl"], ["runs"], ["runs", "--json"],
    ["show"], ["show", "--json"],
])
def test_a_read_only_command_whose_reader_left_exits_0_quietly(
    tmp_path: Path, finished: tuple[Path, Path], command: list[str]
) -> None:
    """stdout is a pipe nobody reads any more: exit 0, nothing on stderr (no 'Broken pipe' error)."""
    manifest, state = finished
    state_flag = "--state-dir" if command[0] == "ls" else "--state"
    target = _first_key(state) if command[0] == "show" else str(manifest)
    out = _closed_pipe()
    read_err, write_err = os.pipe()
    try:
        code = _run([command[0], target, state_flag, str(state), *command[1:]], cwd=tmp_path,
                    stdout=out, stderr=write_err)
    finally:
        os.close(out)
        os.close(write_err)
    with os.fdopen(read_err) as err:
        stderr = err.read()
    assert code == 0, stderr
    assert stderr == "", stderr


def _head_1(cwd: Path, *args: str) -> tuple[str, str]:
    """``runner ARGS | head -1``: the first line of stdout, then the pipe closed; the command must exit 0.
    Returns that line and everything the command wrote on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=cwd, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    with proc.stderr:
        stderr = proc.stderr.read()
    assert proc.wait(60) == 0, stderr
    return first, stderr


def _first_key(state: Path) -> str:
    with sqlite3.connect(state / "ledger.db") as db:
        return str(db.execute("SELECT key FROM jobs LIMIT 1").fetchone()[0])


@pytest.mark.parametrize("command", [["status"], ["ls"], ["export", "--format", "jsonl"]])
def test_a_read_only_command_piped_into_head_1_exits_0(tmp_path: Path, command: list[str]) -> None:
    """`runner status|ls|export --format jsonl … | head -1` on 1,000 jobs: a line, then exit 0, nothing on stderr."""
    manifest = write_manifest(tmp_path, MANY_JOBS.replace("n: [1, 2, 3,", f"n: [{', '.join(map(str, range(100, 200)))}, 1, 2, 3,"),
                              name="many.yaml")
    state = tmp_path / "state"
    prepared = service.prepare(manifest, service.RunOptions(state_dir=state))  # 1,000 pending jobs, nothing sent
    assert sum(prepared.counts.values()) == 8 * 125
    first, stderr = _head_1(tmp_path, command[0], str(manifest), "--state", str(state), *command[1:])
    assert first.strip() and stderr == "", stderr


def test_plan_list_piped_into_head_exits_0(tmp_path: Path) -> None:
    """`runner plan m.yaml --list | head -1` on 200 jobs: the first line arrives, then exit 0 and no error."""
    manifest = write_manifest(tmp_path, MANY_JOBS, name="many.yaml")
    first, stderr = _head_1(tmp_path, "plan", str(manifest), "--list")
    assert first.startswith('{"key": ') and stderr == "", stderr


@pytest.mark.parametrize("flags", [[], ["--log-json"], ["-v"]], ids=["plain", "log-json", "verbose"])
def test_a_run_whose_stdout_and_stderr_are_closed_pipes_finishes_its_work(
    tmp_path: Path, provider: ProviderFactory, flags: list[str]
) -> None:
    """`runner run … 2>&1 | head -0`: the run goes on, every job is done, exit 0 as without the pipe."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    pipe = _closed_pipe()
    try:
        code = _run([*flags, *run_args("run", manifest, state, *sim.engine_args())], cwd=tmp_path,
                    stdout=pipe, stderr=pipe)
    finally:
        os.close(pipe)
    assert code == 0
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 3


def test_a_run_piped_into_head_1_finishes_its_work(tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner run … 2>&1 | head -1`: one line read, the pipe closed, the run still does every job (exit 0)."""
    sim = provider(task_seconds=0.2)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "runner", *run_args("run", manifest, state, *sim.engine_args())],
                            cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY, "RUNNER_PROGRESS_SECONDS": "0.05"}),
                            stdin=subprocess.DEVNULL, stdout=write, stderr=write)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        reader.readline()
    assert proc.wait(60) == 0
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 3


def test_a_run_on_a_terminal_that_closed_finishes_its_work(tmp_path: Path, provider: ProviderFactory) -> None:
    """The live display's terminal is gone (EIO on every write): the run goes on and finishes with exit 0."""
    sim = provider(task_seconds=0.3)
    manifest = write_manifest(tmp_path, THREE_JOBS)
    state = tmp_path / "state"
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runner", *run_args("run", manifest, state, *sim.engine_args())],
                            cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    os.close(slave)
    with os.fdopen(master, "rb", buffering=0) as terminal:
        terminal.read(1)  # the display has started drawing
    try:
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 3


def _closed(fds: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``runner *args`` started with ``fds`` closed (``2>&-``, ``>&-``: a daemon wrapper, a careless cron line)."""
    script = f'exec "$@" {fds}'
    return subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "runner", *args], cwd=cwd,
                          env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_run_started_with_stderr_or_stdout_closed_does_its_work(tmp_path: Path, provider: ProviderFactory) -> None:
    """Before, a run started with stderr closed exited 1 ("some jobs failed") at once, doing nothing, and read
    commands with stdout closed ended in a traceback (operator sweep, 2026-12-04). A closed stream is /dev/null."""
    sim = provider(task_seconds=0.05)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    ran = _closed("2>&-", *run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert ran.returncode == 0, ran
    assert counts(state) == {"done": 3} and sim.accepted() == 3
    for command in (["status"], ["plan"], ["ls"], ["export", "--format", "jsonl"]):
        read = _closed(">&-", command[0], str(manifest), "--state", str(state), *command[1:], cwd=tmp_path)
        assert read.returncode == 0 and "Traceback" not in read.stderr, (command, read)


def test_an_ascii_locale_gets_utf_8_not_a_traceback(tmp_path: Path) -> None:
    """Under a C locale Python does not coerce (PYTHONCOERCECLOCALE=0, PYTHONUTF8=0), stdout was ASCII and the
    first accented prompt ended `plan --list` in a UnicodeEncodeError (operator sweep, 2026-12-04). Output is
    UTF-8 whatever the locale: a file or a pipe gets the text as it is."""
    manifest = tmp_path / "uni.yaml"
    manifest.write_text('name: uni\nprompt: "un café à {city}"\nmatrix:\n  city: [Zürich, 東京]\n', encoding="utf-8")
    ascii_locale = {"PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LC_ALL": "C", "LANG": "C"}
    listed = subprocess.run([sys.executable, "-m", "runner", "plan", str(manifest), "--list"], cwd=tmp_path,
                            env=clean_env(ascii_locale), capture_output=True, timeout=60, check=False)
    assert listed.returncode == 0 and b"Traceback" not in listed.stderr, listed
    prompts = [json.loads(line)["request"]["prompt"] for line in listed.stdout.decode("utf-8").splitlines()]
    assert prompts == ["un café à Zürich", "un café à 東京"]


@pytest.mark.parametrize("command", [["status"], ["ls"], ["export", "--format", "jsonl"], ["plan", "--list"]])
def test_a_read_command_whose_stdout_is_a_full_disk_says_stdout_is_what_failed(
    tmp_path: Path, finished: tuple[Path, Path], command: list[str]
) -> None:
    """`runner status … > /dev/full` (or a file on a full disk): exit 6 and one line saying the *output* could not be
    written. It said 'No space left on device; fix it (the owner or permissions of … the state directory's, or space
    on its disk)', sending the operator to a state directory with room to spare (limits sweep, 2026-12-05)."""
    manifest, state = finished
    with open("/dev/full", "wb") as full:
        read_err, write_err = os.pipe()
        try:
            code = _run([command[0], str(manifest), "--state", str(state), *command[1:]], cwd=tmp_path,
                        stdout=full.fileno(), stderr=write_err)
        finally:
            os.close(write_err)
    with os.fdopen(read_err) as err:
        stderr = err.read()
    assert code == 6, stderr
    assert "standard output" in stderr and "state directory's" not in stderr and "Traceback" not in stderr, stderr
