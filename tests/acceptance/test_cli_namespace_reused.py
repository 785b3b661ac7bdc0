"""Containers of one ``--hostname`` on one kernel, told apart in the ledger's commit mark and lock line by their PID
namespace (:mod:`runner.host`) — whose number the kernel gives again once the namespace is gone: the container started
after another one ended very often gets its predecessor's. A volume copied from a container that was killed mid-run
(its run unended) to the same path in the next container was then taken for that container's own folder and not
looked at, as if no namespace were written: started again on its own volume, the first container paid a second time
for every job the copy sent.

Each container here is a real ``unshare --pid --fork --mount-proc`` (root only, skipped elsewhere) of this host's
name; the second one is made to start in the namespace number the first had, as the kernel hands it out.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_copied_state import SIX, _copy

from runner.boot import boot_id

from test_cli_support import (
    KEY,
    ProviderFactory,
    Result,
    clean_env,
    finish_cli,
    jobs_running,
    namespaces_alone,
    provider,
    run_args,
    wait_for,
    write_manifest,
)

__all__ = ["namespaces_alone", "provider"]  # the fixtures, imported for pytest

pytestmark = pytest.mark.usefixtures("namespaces_alone")

_NOT_THAT_ONE = 99  # the wrapper's exit when the kernel gave another namespace number than the one wanted
# Runs "$@" only in the PID namespace numbered $1 (else exits 99, nothing run).
_IN_NAMESPACE = ('[ "$(readlink /proc/self/ns/pid)" = "pid:[$1]" ] || exit ' f"{_NOT_THAT_ONE}" '; shift; exec "$@"')


def _container(*args: str, namespace: str | None = None) -> list[str]:
    """``python -m runner *args`` as PID 1 of a new PID namespace (numbered ``namespace``, when given)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0 or boot_id() is None:
        pytest.skip("needs root, unshare (util-linux) and Linux's boot id to start a process in a PID namespace")
    command = [sys.executable, "-m", "runner", *args]
    if namespace is not None:
        command = ["sh", "-c", _IN_NAMESPACE, "sh", namespace, *command]
    return [unshare, "--pid", "--fork", "--mount-proc", "--kill-child", *command]


def _start(argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, cwd=cwd, env=clean_env({"NOVITA_API_KEY": KEY}), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _in_namespace(namespace: str, args: list[str], cwd: Path) -> Result:
    """``runner *args`` in a new PID namespace numbered ``namespace``: started again until the kernel hands that
    number out (it does once the namespace that had it is freed, the lowest free one first)."""
    done: list[Result] = []

    def ran() -> bool:
        proc = subprocess.run(_container(*args, namespace=namespace), cwd=cwd, env=clean_env({"NOVITA_API_KEY": KEY}),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode == _NOT_THAT_ONE:
            return False
        done.append(Result(args, proc.returncode, proc.stdout, proc.stderr, 0.0))
        return True

    wait_for(ran, timeout=30, what=f"a PID namespace numbered {namespace} (the one the killed container had)")
    assert "Traceback" not in done[0].stderr, str(done[0])
    return done[0]


def test_a_volume_copied_from_a_killed_container_to_the_next_one_in_its_namespace_number_sends_nothing(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(task_seconds=3600)
    manifest = write_manifest(tmp_path, SIX, name="six.yaml")
    state = tmp_path / "state"  # /state in each container
    first = _start(_container(*run_args("run", manifest, state, *sim.engine_args())), tmp_path)
    try:
        wait_for(lambda: sim.accepted() == 2 or first.poll() is not None, what="the first container's two submits")
        wait_for(lambda: jobs_running(state) == 2, what="their task ids recorded")
    finally:
        first.send_signal(signal.SIGKILL)  # the container killed mid-run (its run never ends)
        finish_cli(first)
    written = next(line.split(" ", 1)[1] for line in (state / "ledger.mark").read_text().splitlines()
                   if line.startswith("pids "))
    namespace = written.split("/", 1)[1].split(".", 1)[0]
    # Its volume, kept aside (the first container's, to be started again), copied to the next container's /state.
    kept = state.rename(tmp_path / "first-volume")
    _copy(kept, state)
    second = _in_namespace(namespace, run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")),
                           tmp_path)
    assert sim.accepted() == 2, f"the copy paid for {sim.accepted() - 2} jobs the first container's run sends\n{second}"
    assert second.code == 2 and "Nothing was sent" in second.stderr and "also named" in second.stderr, str(second)


@pytest.mark.parametrize("reused", [True, False])
def test_a_container_killed_mid_run_and_started_again_on_its_volume_runs_on(
        tmp_path: Path, provider: ProviderFactory, reused: bool) -> None:
    """No false alarm: the container killed mid-run (OOM, kill -9) is started again on the very same volume — in the
    namespace number it had, or another — and collects the two tasks sent, sends the four others once."""
    sim = provider(task_seconds=3600)
    manifest = write_manifest(tmp_path, SIX, name="six.yaml")
    state = tmp_path / "state"
    first = _start(_container(*run_args("run", manifest, state, *sim.engine_args())), tmp_path)
    try:
        wait_for(lambda: sim.accepted() == 2 or first.poll() is not None, what="the first container's two submits")
        wait_for(lambda: jobs_running(state) == 2, what="their task ids recorded")
    finally:
        first.send_signal(signal.SIGKILL)
        finish_cli(first)
    args = run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6"))
    if reused:
        written = next(line.split(" ", 1)[1] for line in (state / "ledger.mark").read_text().splitlines()
                       if line.startswith("pids "))
        again = _in_namespace(written.split("/", 1)[1].split(".", 1)[0], args, tmp_path)
    else:
        proc = subprocess.run(_container(*args), cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
        again = Result(args, proc.returncode, proc.stdout, proc.stderr, 0.0)
    assert again.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(again)
    assert "copied" not in again.stderr and "copy of" not in again.stderr, str(again)
