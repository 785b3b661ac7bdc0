"""What an export killed in a container (``docker run --rm … runner export``, OOM-killed) left in its mounted folder:
the next container's export has another PID namespace, so the leftover's writer tag (:func:`runner.host.place_tag`)
is never its own. Such a file was kept for good, as one another machine is still writing would be; untouched for a
day, it is a dead writer's and goes. Each container is a real ``unshare --pid --fork --mount-proc`` (root only,
skipped elsewhere); a day is not waited for: the leftover's time is set back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.boot import boot_id
from runner.ledger.rescue import CRASH_ENV

from test_cli_support import KEY, ProviderFactory, clean_env, done_trio, namespaces_alone, provider

__all__ = ["namespaces_alone", "provider"]  # the fixtures, imported for pytest

pytestmark = pytest.mark.usefixtures("namespaces_alone")

DAY = 24 * 3600


def _in_container(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``runner *args`` in a new PID namespace, a child of its PID 1 (a shell: PID 1 cannot SIGKILL itself)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0 or boot_id() is None:
        pytest.skip("needs root, unshare (util-linux) and Linux's boot id to start a process in a PID namespace")
    command = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", '"$@"; exit $?', "sh",
               sys.executable, "-m", "runner", *args]
    return subprocess.run(command, cwd=cwd, env=clean_env({"NOVITA_API_KEY": KEY, **(env or {})}),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)


def test_a_leftover_of_an_export_killed_in_another_container_goes_once_untouched_for_a_day(
        tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    out = tmp_path / "out" / "jobs.jsonl"
    out.parent.mkdir()
    args = ["export", str(manifest), "--state", str(state), "--format", "jsonl", "--to", str(out)]
    killed = _in_container(args, tmp_path, {CRASH_ENV: "export-rows"})
    assert killed.returncode == 128 + signal.SIGKILL, f"the crash point was not reached: {killed}"
    [left] = out.parent.glob(".jobs.jsonl.tmp-*@*")

    fresh = _in_container(args, tmp_path)  # at once: it could be another machine's export, still writing
    assert fresh.returncode == 0 and "Traceback" not in fresh.stderr, str(fresh)
    assert left.exists(), "a leftover of another PID space written just now was removed"

    long_ago = time.time() - DAY - 60
    os.utime(left, (long_ago, long_ago))
    later = _in_container(args, tmp_path)  # a day on, the next container's export
    assert later.returncode == 0 and "Traceback" not in later.stderr, str(later)
    assert sorted(p.name for p in out.parent.iterdir()) == ["jobs.jsonl"], "a dead export's temporary file was kept"
    assert len(out.read_text().splitlines()) == 3
