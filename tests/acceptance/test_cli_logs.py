"""Issue 12's CLI without traps, the logging part: `show` without a ledger, --log-json on every line (signals
included), cron-friendly plain logs (timestamps, a run header, no duplicated last line, repeats collapsed)."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from test_cli_support import (
    KEY,
    ProviderFactory,
    clean_env,
    finish_cli,
    provider,
    read_until,
    run_args,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
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


# -- --log-json: every line of stderr is one JSON object, signals and the summary included -------------------

def _json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``stderr`` parsed as JSON (a line that is not fails the test, quoted)."""
    records = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\n--- stderr:\n{stderr}") from None
    assert records, "nothing on stderr"
    return records




@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda sig: sig.name)
def test_log_json_stays_json_through_a_stop_signal(tmp_path: Path, provider: ProviderFactory,
                                                   sig: signal.Signals) -> None:
    """`runner --log-json run …` stopped by a signal: the signal line, the summary, every line is JSON; exit 3."""
    sim = provider(task_seconds=60.0, p_slow=1.0, slow_seconds=0.5)
    manifest = write_manifest(tmp_path)
    proc = start_cli("--log-json", *run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    wait_for(lambda: sim.accepted() >= 1, what="a paid task whose response is still on the wire")
    proc.send_signal(sig)
    stderr = finish_cli(proc)
    assert proc.returncode == 3, stderr
    records = _json_lines(stderr)
    assert records[0].get("event") == "start" and records[0]["ledger"].endswith("ledger.db"), records[0]
    stopping = [r for r in records if r.get("event") == "signal"]
    assert stopping and stopping[0]["signal"] == sig.name and "finishing the submits" in stopping[0]["message"]
    assert records[-1]["event"] == "summary" and records[-1]["reason"] == "signal", records[-1]
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)


def test_log_json_stays_json_when_ctrl_c_twice_stops_at_once_with_exit_130(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """Ctrl-C, then Ctrl-C again: 'stopping now' as JSON, exit 130 (as the README's table says)."""
    sim = provider(task_seconds=60.0, p_slow=1.0, slow_seconds=5.0)
    manifest = write_manifest(tmp_path)
    proc = start_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), "--log-json", cwd=tmp_path)
    wait_for(lambda: sim.accepted() >= 1, what="a paid task whose response is still on the wire")
    proc.send_signal(signal.SIGINT)
    head = read_until(proc, "finishing the submits on the wire")
    proc.send_signal(signal.SIGINT)
    stderr = head + finish_cli(proc)
    assert proc.returncode == 130, stderr
    records = _json_lines(stderr)
    last = records[-1]
    assert last["event"] == "signal" and last["action"] == "stopped at once" and last["exit_code"] == 130, last


def test_log_json_before_the_engine_and_on_a_usage_error(tmp_path: Path) -> None:
    """A stop while importing, and click's own usage error: with --log-json each is one JSON line too."""
    early = subprocess.run(
        [sys.executable, "-c", _STOP_WHILE_IMPORTING, "run", "--log-json", "m.yaml"], cwd=tmp_path,
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert early.returncode == 3, early.stderr
    (line,) = _json_lines(early.stderr)
    assert line["signal"] == "SIGTERM" and "stopped before anything was sent" in line["message"], line
    usage = run_cli("run", "--log-json", "--no-such-flag", cwd=tmp_path)
    assert usage.code == 2, str(usage)
    (error,) = _json_lines(usage.stderr)
    assert error["level"] == "error" and "--no-such-flag" in error["message"], error


_STOP_WHILE_IMPORTING = """\
import builtins, os, signal, sys
sys.argv = ['runner', *sys.argv[1:]]
real_import = builtins.__import__
def hook(name, *args, **kwargs):
    if name == 'runner.cli':
        builtins.__import__ = real_import
        os.kill(os.getpid(), signal.SIGTERM)
    return real_import(name, *args, **kwargs)
builtins.__import__ = hook
from runner._entry import main
main()
"""


# -- cron-friendly plain logs ----------------------------------------------------------------------------------

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) runner: ")


def test_a_cron_log_has_a_timestamp_on_every_line_and_a_header_first(tmp_path: Path, provider: ProviderFactory) -> None:
    """stderr not a terminal: each line starts with an ISO 8601 wall-clock time; the first names the version,
    the manifest, the ledger and the state directory; the summary is the last line, once."""
    from runner import __version__

    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(STAMP.match(line) for line in lines), str(result)
    first = STAMP.sub("", lines[0])
    assert f"runner {__version__} run {manifest}" in first, first
    assert f"ledger {state.absolute() / 'ledger.db'}" in first and f"state dir {state.absolute()}" in first, first
    assert lines[-1].endswith("[complete]") and not lines[-2].endswith("[complete]"), str(result)


def test_a_run_that_stops_on_an_error_does_not_end_on_the_same_sentence_twice(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """A wrong key stops the run: the summary says [fatal], the last line says the error once (it was twice)."""
    sim = provider(api_key="the-right-key-0123456789")
    manifest = write_manifest(tmp_path)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert result.code == 2, str(result)
    lines = [STAMP.sub("", line) for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "INVALID_API_KEY" in lines[-1], str(result)
    assert lines[-2].endswith("[fatal]"), str(result)
    said = lines[-1].removeprefix("error: ")
    assert sum(said in line for line in lines[-2:]) == 1, str(result)


def test_no_progress_on_a_terminal_gives_timestamped_plain_lines(tmp_path: Path, provider: ProviderFactory) -> None:
    """`--no-progress` on a terminal: no live display, plain lines, each with its wall-clock time."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", *run_args("run", manifest, tmp_path / "state", *sim.engine_args()),
         "--no-progress"], cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), stdin=subprocess.DEVNULL,
        stdout=slave, stderr=slave)
    os.close(slave)
    seen = b""
    with os.fdopen(master, "rb", buffering=0) as terminal:
        while True:
            try:
                chunk = terminal.read(65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    assert proc.wait(60) == 0, seen
    lines = [line for line in seen.decode().replace("\r", "").splitlines() if line.strip()]
    assert lines and all(STAMP.match(line) for line in lines), seen.decode()
    assert "\x1b[" not in seen.decode()  # no live display drawn


def test_log_json_covers_the_commands_around_a_run(tmp_path: Path, provider: ProviderFactory) -> None:
    """report, export --format hf, reject and verify: with --log-json every stderr line is JSON (they printed
    plain `runner: …` lines)."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    commands = [
        ("report", str(manifest), "--state", str(state), "--to", str(tmp_path / "gallery")),
        ("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(tmp_path / "hf")),
        ("reject", str(manifest), "--state", str(state), "0000000", "--reason", "blurry"),
    ]
    for args in commands:
        result = run_cli("--log-json", *args, cwd=tmp_path)
        assert result.stderr.strip(), str(result)
        _json_lines(result.stderr)  # every line parses, or it says which did not
