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

from test_cli_support import (
    KEY,
    ProviderFactory,
    Result,
    clean_env,
    namespaces_alone,
    provider,
    run_args,
    write_manifest,
)

__all__ = ["namespaces_alone", "provider"]  # the fixtures, imported for pytest

pytestmark = pytest.mark.usefixtures("namespaces_alone")

# Binds the state directory ($1) on itself, then makes every other mount a container would not have writable
# read-only: /tmp and /var/tmp when they are mounts of their own, and / (which holds them otherwise).
_READ_ONLY_ROOT = (
    'set -e; mount --bind "$1" "$1"; shift; '
    "for m in /tmp /var/tmp /; do if mountpoint -q $m; then mount -o remount,bind,ro $m; fi; done; "
    'exec "$@"'
)


# Shows the CLI (this shell's PID, kept by exec) the mount table ($1) a container's process reads in its
# /proc/self/mountinfo.
_MOUNT_TABLE = 'set -e; mount --bind "$1" /proc/$$/mountinfo; shift; exec "$@"'


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


def _seeing_mounts(table: str, tmp_path: Path, *args: str) -> Result:
    """``runner *args`` in the test's environment, shown ``table`` as its mountinfo (the warning's only input)."""
    info = tmp_path / "mountinfo"
    info.write_text(table, encoding="utf-8")
    proc = subprocess.run(
        [_unshare(), "-m", "--propagation", "private", "sh", "-c", _MOUNT_TABLE, "sh", str(info),
         sys.executable, "-m", "runner", *args],
        cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY, "RUNNER_SCRATCH_STATE": None}), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False,
    )
    result = Result(list(args), proc.returncode, proc.stdout, proc.stderr, 0.0)
    assert "Traceback" not in result.stderr, str(result)
    return result


_CONTAINER_ROOT = ("612 540 0:52 / / rw,relatime master:305 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/"
                   "Q2X:/var/lib/docker/overlay2/l/ZK4,upperdir=/var/lib/docker/overlay2/5c1/diff\n")


def test_a_state_directory_in_the_containers_own_file_system_is_said_before_anything_is_sent(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`docker run --rm image runner run m.yaml` with no volume for the state directory: the ledger was made in the
    container's own layer and removed with it, and every night's run made a new one and paid for the whole batch
    again, saying nothing but "created a new ledger". Before anything is sent, a warning names that loss and the
    volume to mount."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    ran = _seeing_mounts(_CONTAINER_ROOT, tmp_path, *run_args("run", manifest, state, *sim.engine_args()))
    assert ran.code == 0, str(ran)
    warning = next((line for line in ran.stderr.splitlines() if "container" in line), "")
    assert "warning:" in warning and "own file system" in warning and str(state) in warning, str(ran)
    assert "pay for every video again" in warning and "-v " in warning, warning
    assert ran.stderr.index(warning) < ran.stderr.index("account balance")  # said before the first request
    planned = _seeing_mounts(_CONTAINER_ROOT, tmp_path, *run_args("plan", manifest, state))
    assert "own file system" in planned.stderr, str(planned)
    assert sim.accepted() == 3


def test_an_anonymous_volume_and_an_empty_dir_are_said_and_a_named_volume_is_not(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """An image's `VOLUME /state` that no `-v` names gets a new anonymous volume for every container (removed with it
    under --rm), and a Kubernetes emptyDir goes with its pod: the ledger on either was new at every run, the batch
    paid for again. A named volume (`-v videos:/state`) or a host folder is kept: nothing said."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    anonymous = "/var/lib/docker/volumes/" + "3f" * 32 + "/_data"
    empty_dir = "/var/lib/kubelet/pods/0c5e-11/volumes/kubernetes.io~empty-dir/state"
    for root, said in ((anonymous, "anonymous volume"), (empty_dir, "emptyDir"),
                       ("/var/lib/docker/volumes/videos/_data", None), ("/srv/videos/state", None)):
        table = f"{_CONTAINER_ROOT}700 612 253:1 {root} {state} rw,relatime - ext4 /dev/vda1 rw\n"
        planned = _seeing_mounts(table, tmp_path, *run_args("plan", manifest, state))
        assert planned.code == 0, str(planned)
        if said is None:  # (a warning of /tmp, which a reboot may empty, may stand: the test's folders are there)
            assert not any(words in planned.stderr for words in ("the container", "a volume", "emptyDir")), str(planned)
        else:
            assert said in planned.stderr and "pay for every video again" in planned.stderr, str(planned)
