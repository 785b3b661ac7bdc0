"""The runner run as a container runs it: ``docker run --read-only -v $PWD/state:/state … runner run m.yaml --state
/state`` (a read-only root file system, no tmpfs: /tmp, /var/tmp and the working directory not writable, the state
volume alone writable), with ``env -i``'s bare environment and no passwd entry for its user.

The read-only root is made in a mount namespace of the CLI's own (``unshare -m``: root only, skipped elsewhere): the
state directory is bind-mounted on itself (a volume), then ``/``, ``/tmp`` and ``/var/tmp`` are remounted read-only
for that process alone. Every run is counted against the simulator's books on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli_support import KEY, ProviderFactory, Result, provider, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

# Binds the state directory ($1) on itself, then makes every other mount a container would not have writable
# read-only: /tmp and /var/tmp when they are mounts of their own, and / (which holds them otherwise).
_READ_ONLY_ROOT = (
    'set -e; mount --bind "$1" "$1"; shift; '
    "for m in /tmp /var/tmp /; do if mountpoint -q $m; then mount -o remount,bind,ro $m; fi; done; "
    'exec "$@"'
)


def _unshare() -> str:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare (util-linux) to give the CLI a read-only root file system of its own")
    probe = subprocess.run([unshare, "-m", "--propagation", "private", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not allowed here: {probe.stderr.decode(errors='replace').strip()}")
    return unshare


def in_container(*args: str, state: Path, cwd: Path) -> Result:
    """``runner *args`` with a read-only root file system but ``state``, in a container's bare environment (no HOME,
    LANG, TERM or TMPDIR), stdin /dev/null."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOSTNAME": "3f9c2a1b7d4e", "NOVITA_API_KEY": KEY,
           "RUNNER_SCRATCH_STATE": "1"}  # (the test's state is under /tmp, which a reboot may empty: the run would say so)
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc = subprocess.run(
        [_unshare(), "-m", "--propagation", "private", "sh", "-c", _READ_ONLY_ROOT, "sh", str(state),
         sys.executable, "-m", "runner", *args],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )
    result = Result(list(args), proc.returncode, proc.stdout, proc.stderr, 0.0)
    assert "Traceback" not in result.stderr, str(result)
    return result


def _many(outputs: str) -> str:
    numbers = ", ".join(str(n) for n in range(3000))
    return f'name: many\ndefaults:\n  duration: 3\nprompt: "a lantern number {{n}}"\nmatrix:\n  n: [{numbers}]\noutput: "{outputs}"\n'


def test_a_read_only_root_with_no_temporary_folder_plans_an_edited_batch(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """SQLite writes a temporary file (a statement's journal past 64 KiB, a sort past its cache) in the first folder
    it may write of $SQLITE_TMPDIR, $TMPDIR, /var/tmp, /usr/tmp, /tmp and the working directory: in a container with
    a read-only root and no tmpfs there is none, and the nightly batch of 3000 jobs whose output names were edited
    failed at every run, "I/O error on …/ledger.db (disk I/O error)" — a disk that seemed broken, nothing sent. It is
    planned now (SQLite keeps those files in memory there) and the run goes on, each video paid for once."""
    sim = provider()
    manifest = write_manifest(tmp_path, _many("{n}.mp4"), "many.yaml")
    state = tmp_path / "state"
    state.mkdir()
    engine = ["--base-url", sim.base_url, "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.05"]
    first = in_container("run", str(manifest), "--state", str(state), *engine, "--budget", "0.4", state=state,
                         cwd=tmp_path)
    assert first.code == 3 and "stopped at its budget" in first.stderr, str(first)
    assert sim.accepted() == 1
    write_manifest(tmp_path, _many("lantern-{n}.mp4"), "many.yaml")  # the output names edited: every target moves
    second = in_container("run", str(manifest), "--state", str(state), *engine, "--budget", "0.7", state=state,
                          cwd=tmp_path)
    assert second.code == 3 and "stopped at its budget" in second.stderr, str(second)
    assert "I/O error" not in second.stderr, str(second)
    assert sim.accepted() == 2  # one more sent, the first not again
    assert sim.max_per_body() == 1
    assert not list(tmp_path.glob("etilqs_*"))  # nothing of SQLite's left in the working directory
