"""A ``cp -a`` copy of a state directory whose folder name holds what a line of text cannot (review of the copy note,
2026-12-06): a byte that is not UTF-8 (a name made on a Latin-1 system, a mounted old disk), or a line break (a
newline, U+2028 pasted from a document). The copy's checks wrote and read the original's path as a line of text:

- a byte not UTF-8: the copy's note of its original, and the original's moved mark naming the copy, could not be
  written into the ledger (SQLite text is UTF-8): every command from the copy — the drill's ``reject``, the run —
  stopped with a traceback, and no way on was said;
- a line break: the commit mark's ``path`` line was cut at it, so the copy read as the copy of no folder: a run from
  the copy paid for every pending job, and the cron line's run of the original paid for them again.

Each is one batch, billed once per job, whichever command opens the copy first.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from test_cli_support import (
    SIX_JOBS_TWO_AT_ONCE,
    Provider,
    ProviderFactory,
    Result,
    finish_cli,
    jobs_running,
    provider,
    run_args,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SIX = SIX_JOBS_TWO_AT_ONCE
# (ids: pytest-xdist cannot send a test id holding a byte that is not UTF-8)
NAMES = pytest.mark.parametrize("name", ["st\udcffate", "st\nate", "st\u2028ate"],
                                ids=["latin1-byte", "newline", "line-separator"])


def _stopped_run(tmp_path: Path, sim: Provider, state: Path) -> Path:
    """``runner run six.yaml --state STATE``, two of its six jobs running at the provider, stopped by Ctrl-C."""
    manifest = write_manifest(tmp_path, SIX, name="six.yaml")
    proc: subprocess.Popen[str] = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    try:
        wait_for(lambda: sim.accepted() == 2 or proc.poll() is not None, what="the run's first two submits")
        assert sim.accepted() == 2, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        wait_for(lambda: jobs_running(state) == 2, what="the two task ids recorded")
    finally:
        proc.send_signal(signal.SIGINT)
        finish_cli(proc)
    return manifest


def _said(result: object) -> str:
    """``result`` printable: a failure's text holding a name's byte stops pytest-xdist (it sends text as UTF-8)."""
    return str(result).encode("utf-8", "backslashreplace").decode()


def _cli(*args: str, **kwargs: Any) -> Result:
    try:
        return run_cli(*args, **kwargs)
    except AssertionError as exc:  # (its traceback, said printable)
        raise AssertionError(_said(exc)) from None


@NAMES
@pytest.mark.parametrize("first", ["reject", "submit"])
def test_a_copy_in_a_folder_whose_name_is_no_line_of_text_pays_once(tmp_path: Path, provider: ProviderFactory,
                                                                     name: str, first: str) -> None:
    """``cp -a NAME big/NAME``; a `runner reject` there first (or none), then a run from the copy (four jobs paid),
    then the cron line's run of the original: refused, naming the copy; every job billed once, no traceback."""
    sim = provider(task_seconds=3600)
    state = tmp_path / name
    manifest = _stopped_run(tmp_path, sim, state)
    big = tmp_path / "big" / name
    big.parent.mkdir()
    subprocess.run(["cp", "-a", str(state), str(big)], check=True)
    if first == "reject":
        db = sqlite3.connect(f"file:{big / 'ledger.db'}?mode=ro", uri=True)
        key = str(db.execute("SELECT key FROM jobs WHERE state = 'running' LIMIT 1").fetchone()[0])
        db.close()
        drill = _cli("reject", str(manifest), key, "--state", str(big), "--reason", "off", cwd=tmp_path)
        assert "is left as it is" in drill.stderr, _said(drill)
    copy = _cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert copy.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, _said(copy)
    cron = _cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{_said(cron)}"
    assert cron.code == 2 and "run with --state" in cron.stderr and "/big/st" in cron.stderr, _said(cron)
    again = _cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert again.code == 3 and sim.accepted() == 6 and "is a copy of" not in again.stderr, _said(again)

