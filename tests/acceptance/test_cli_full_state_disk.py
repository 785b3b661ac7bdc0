"""A state directory whose disk is full when a command starts: exit 6 and "free space", not a usage error (exit 2).

Opening the ledger for writing rewrites the lock file (``ledger.lock``: who holds it, since when), which needs a
block of its own on the disk. On a full disk that write failed as a plain ledger error, which ``run`` and
``collect`` turned into exit 2 ("fix the input": the manifest, the flags) and ``verify`` into exit 3 ("work is
outstanding, a later run resumes it") — a nightly cron job taking 3 as success never said that the disk was
full. The exit code for a disk someone must free is 6 (docs/architecture.md). Proven on a real full file system:
a small tmpfs holding the state directory, filled by another file (OS sweep, 2026-12-05)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.testing import fill_disk

from test_cli_support import (
    KEY,
    ProviderFactory,
    clean_env,
    cli_argv,
    counts,
    done_trio,
    provider,
    run_args,
    run_cli,
    setpriv_argv,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SmallDisk = Callable[..., Path]  # the suite's fixture (tests/conftest.py)
EXIT_LOCAL = 6


@pytest.mark.parametrize("command", ["run", "collect", "verify"])
def test_a_full_disk_under_the_state_directory_is_exit_6_and_says_free_space(
        tmp_path: Path, provider: ProviderFactory, small_disk: SmallDisk, command: str) -> None:
    manifest, done_state, sim, _keys = done_trio(tmp_path, provider)
    disk = small_disk(tmp_path / "disk", size="4m")
    state = disk / "state"
    shutil.copytree(done_state, state)
    if command == "verify":  # an intact batch is checked read-only, nothing written (exit 0): a video to restore
        next((state / "outputs" / "trio").glob("*.mp4")).unlink()
    filler = fill_disk(disk)
    extra = ["--base-url", sim.base_url] if command == "verify" else sim.engine_args()

    full = run_cli(*run_args(command, manifest, state, *extra), cwd=tmp_path)
    assert full.code == EXIT_LOCAL, str(full)
    assert "free space" in full.stderr.lower() and str(state) in full.stderr, str(full)
    assert sim.accepted() == 3  # the three of the first run: nothing sent again

    filler.unlink()  # the operator's fix
    again = run_cli(*run_args(command, manifest, state, *extra), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert counts(state) == {"done": 3} and sim.accepted() == 3


@pytest.mark.parametrize("command", ["copy", "reopen"])
def test_a_ledger_copy_off_a_full_disk_is_exit_6_not_a_usage_error(
        tmp_path: Path, provider: ProviderFactory, small_disk: SmallDisk, command: str) -> None:
    """The disk under a state directory filled up and the operator moves the batch to a roomier one with `runner
    ledger copy` (or clears a copy's mark): the lock file cannot be written there, and the copy said "error" and
    exit 2, which tells a script to fix its input; it is exit 6, "free space", as for every other command."""
    _manifest, done_state, _sim, _keys = done_trio(tmp_path, provider)
    disk = small_disk(tmp_path / "disk", size="4m")
    state = disk / "state"
    shutil.copytree(done_state, state)
    filler = fill_disk(disk)
    args = ("ledger", "copy", str(state), str(tmp_path / "roomier" / "state")) if command == "copy" else (
        "ledger", "reopen", str(state))

    full = run_cli(*args, cwd=tmp_path)
    assert full.code == EXIT_LOCAL, str(full)
    assert "free space" in full.stderr.lower() and str(state) in full.stderr, str(full)

    filler.unlink()  # the operator's fix
    again = run_cli(*args, cwd=tmp_path)
    assert again.code == 0, str(again)


def test_a_state_directory_on_a_disk_mounted_read_only_is_exit_6(
        tmp_path: Path, provider: ProviderFactory, small_disk: SmallDisk) -> None:
    """The same for a file system remounted read-only (an ext4 that met an error does it by itself), the lock file
    not there yet (a ledger restored without it): it cannot be created, EROFS."""
    manifest, done_state, sim, _keys = done_trio(tmp_path, provider)
    disk = small_disk(tmp_path / "disk", size="4m")
    state = disk / "state"
    shutil.copytree(done_state, state)
    (state / "ledger.lock").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)

    refused = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert refused.code == EXIT_LOCAL, str(refused)
    assert "Read-only file system" in refused.stderr and "make the disk writable" in refused.stderr, str(refused)

    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and counts(state) == {"done": 3} and sim.accepted() == 3, str(again)


def test_a_state_directory_made_read_only_between_runs_is_exit_6(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """``chmod -R a-w state`` after a run (a backup script, an operator freezing a finished batch), then the next
    run, collect or reject as a user file modes apply to: the lock file cannot be opened for writing (EACCES). That
    was exit 2 for run and collect ("fix the input") and 3 for reject ("resume later"); the reads still work."""
    unprivileged = setpriv_argv()
    manifest, state, sim, keys = done_trio(tmp_path, provider)
    for path in (state, *state.rglob("*")):
        path.chmod(0o555 if path.is_dir() else 0o444)

    def as_user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*unprivileged, *cli_argv(*args, "--state", str(state))], cwd=tmp_path,
                              env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True, timeout=60,
                              check=False)

    try:
        for args in (("run", str(manifest), "--base-url", sim.base_url),
                     ("collect", str(manifest), "--base-url", sim.base_url),
                     ("reject", str(manifest), keys["cat"], "--reason", "blurry")):
            refused = as_user(*args)
            assert refused.returncode == EXIT_LOCAL, (args[0], refused.returncode, refused.stderr)
            assert "Permission denied" in refused.stderr and "writable by this user" in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
        assert as_user("status", str(manifest)).returncode == 0
        assert sim.accepted() == 3
    finally:
        for path in (state, *state.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("command", ["status", "ls", "export"])
def test_a_fifo_at_the_ledgers_name_is_refused_not_waited_on(tmp_path: Path, command: str) -> None:
    """``ledger.db`` a FIFO (a ``mkfifo`` typo, a tool streaming a backup in): the read-only commands opened it and
    SQLite waited for its first bytes for ever, deaf to Ctrl-C and SIGTERM (it retries the interrupted read); only
    ``kill -9`` ended them (OS sweep, 2026-12-05). A ledger that is not a regular file is refused at once."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "ledger.db")
    try:
        refused = run_cli(*run_args(command, manifest, state), cwd=tmp_path, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`runner {command}` waited on the FIFO at {state / 'ledger.db'}")
    assert refused.code == 2 and "not a regular file" in refused.stderr, str(refused)
