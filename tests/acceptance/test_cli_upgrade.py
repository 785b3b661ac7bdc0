"""The program's files change under a live run: ``pip install -U kling-runner`` (which may upgrade pydantic too) or a
``git pull`` in an editable checkout while a nightly batch goes on.

A module a process imports after it started is the new version's. These tests run the runner from a copy of its files
(``PYTHONPATH``), changed as an upgrade would leave them: a module gone. Upgrade sweep, 2026-12-05: a pydantic module
gone before the first submit's answer validator was built ended the run in a traceback (exit 1) with the jobs written
ahead left ``submitting``, which the next run held in doubt ("may have been paid") though nothing had been sent; the
live display on a terminal imported its module once the engine had started, and one gone ended the run in a traceback.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydantic
import pytest

import runner

from test_cli_support import (
    KEY,
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

pytestmark = pytest.mark.timeout(120)

SOURCE = Path(runner.__file__).parent


def _installed_copy(folder: Path, *, with_pydantic: bool = False) -> Path:
    """A copy of runner's files (and of pydantic's) in ``folder``, put first on the child's ``PYTHONPATH``."""
    shutil.copytree(SOURCE, folder / "runner", ignore=shutil.ignore_patterns("__pycache__"))
    if with_pydantic:
        shutil.copytree(Path(pydantic.__file__).parent, folder / "pydantic",
                        ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def _on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with its stderr on a pseudo-terminal (as in an operator's shell): its exit code and stderr."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child's end of the terminal is closed
                break
            if not data:
                break
            seen += data
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, seen.decode("utf-8", "replace")


def test_a_pydantic_module_gone_before_the_first_submit_is_ready_sends_nothing_and_keeps_the_jobs_pending(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """pydantic upgraded under the run before the submit answer's validator was built: no traceback, exit 3, one line
    saying the files changed and to run again; nothing sent, every job pending (none held in doubt); the next run, of
    the installed code, pays for each job once."""
    sim = provider()
    copy = _installed_copy(tmp_path / "site", with_pydantic=True)
    (copy / "pydantic" / "plugin" / "_loader.py").unlink()  # imported first when the answer's validator is built
    manifest = write_manifest(tmp_path, THREE_JOBS)
    state = tmp_path / "state"
    stopped = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path,
                      env={"PYTHONPATH": str(copy)})
    assert stopped.code == 3, str(stopped)
    assert "files changed while this run was going" in stopped.stderr and "run again" in stopped.stderr, str(stopped)
    assert sim.accepted() == 0
    assert counts(state) == {"pending": 3}
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 3 and sim.max_per_body() == 1


_WATCH_IMPORTS = """\
import atexit, runpy, sys
requested, late = [False], []
def watch(event, args):
    if event == "socket.connect":
        requested[0] = True
    elif event == "import" and requested[0] and args[0] not in sys.modules and args[0].startswith("runner"):
        late.append(args[0])
sys.addaudithook(watch)
atexit.register(lambda: print("late imports:", " ".join(late) or "none", file=sys.stderr, flush=True))
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


def test_a_run_on_a_terminal_imports_none_of_runners_modules_once_it_has_asked_the_provider(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """With stderr on a terminal (the live display), no module of runner is first imported after the run's first
    request: an upgrade under the run cannot hand it a newer module while its POSTs go out."""
    sim = provider(task_seconds=0.3)
    manifest = write_manifest(tmp_path, THREE_JOBS)
    watcher = tmp_path / "watch_imports.py"
    watcher.write_text(_WATCH_IMPORTS, encoding="utf-8")
    argv = [sys.executable, str(watcher), *run_args("run", manifest, tmp_path / "state", *sim.engine_args())]
    code, stderr = _on_a_terminal(argv, tmp_path, clean_env({"NOVITA_API_KEY": KEY}))
    assert code == 0, stderr[-3000:]
    assert sim.accepted() == 3
    assert "late imports: none" in stderr, stderr[-3000:]


def test_a_module_of_runner_gone_under_a_run_on_a_terminal_ends_it_in_one_line_with_nothing_sent(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The live display's module removed by an upgrade before the run needs it: one line naming the module and
    saying the files changed and to run again, exit 3, no traceback, nothing sent, the jobs pending."""
    sim = provider()
    copy = _installed_copy(tmp_path / "site")
    (copy / "runner" / "reporting" / "live.py").unlink()
    manifest = write_manifest(tmp_path, THREE_JOBS)
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "runner", *run_args("run", manifest, state, *sim.engine_args())]
    code, stderr = _on_a_terminal(argv, tmp_path, clean_env({"NOVITA_API_KEY": KEY, "PYTHONPATH": str(copy)}))
    assert "Traceback" not in stderr, stderr[-3000:]
    assert code == 3, stderr[-3000:]
    assert "runner.reporting.live" in stderr and "files changed while it was running" in stderr, stderr[-3000:]
    assert "run the command again" in stderr, stderr[-3000:]
    assert sim.accepted() == 0
    assert counts(state) == {"pending": 3}
