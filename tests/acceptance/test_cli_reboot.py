"""A state directory a reboot empties (a tmpfs: /dev/shm) is warned about once, before anything is sent, by `run` and
`plan`: the ledger would be gone (every video paid again) and the videos lost; the fix is --state on a disk kept.
Not for a folder on disk; not with RUNNER_SCRATCH_STATE=1, the operator's "I know" (the suite's own setting)."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.service.reboot_warning import SCRATCH_ENV

from test_cli_support import run_args, run_cli, write_manifest

QUICK = ("--sim-task-seconds", "0", "--rpm", "none", "--poll-interval", "0.05")
WARNED = "a reboot would take"
LOUD = {SCRATCH_ENV: None}  # the suite's "I know" taken away


def _fs_type(folder: str) -> str:
    """The file system type of ``folder`` as coreutils names it (``tmpfs``, ``ext2/ext3``…), not runner's reading."""
    done = subprocess.run(["stat", "-f", "-c", "%T", folder], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _folder_in(top: str, *, memory: bool) -> Iterator[Path]:
    if not Path(top).is_dir() or (_fs_type(top) in ("tmpfs", "ramfs")) != memory:
        pytest.skip(f"{top} is not {'memory-backed' if memory else 'on disk'} here")
    where = Path(tempfile.mkdtemp(prefix="runner-test-reboot-", dir=top))
    try:
        yield where
    finally:
        subprocess.run(["rm", "-rf", str(where)], check=False)


@pytest.fixture
def shm() -> Iterator[Path]:
    """A new folder in /dev/shm (a tmpfs on Linux), removed after the test."""
    yield from _folder_in("/dev/shm", memory=True)


@pytest.fixture
def on_disk() -> Iterator[Path]:
    """A new folder in /var/tmp, on disk and emptied by no tmpfiles.d line at boot (else the test skips)."""
    rules = subprocess.run("cat /etc/tmpfiles.d/*.conf /usr/lib/tmpfiles.d/*.conf 2>/dev/null", shell=True,
                           capture_output=True, text=True, check=False).stdout
    if re.search(r"^[DR]\S*\s+/var(/tmp)?/?\s", rules, re.MULTILINE):
        pytest.skip("a tmpfiles.d line empties /var/tmp at boot here")
    yield from _folder_in("/var/tmp", memory=False)


def test_a_run_with_its_state_on_a_tmpfs_warns_once_before_sending_and_goes_on(tmp_path: Path, shm: Path) -> None:
    manifest = write_manifest(tmp_path)
    state = shm / "state"
    result = run_cli(*run_args("run", manifest, state, "--simulate", *QUICK), cwd=tmp_path, key=None, env=LOUD)
    assert result.code == 0, str(result)
    warned = [line for line in result.stderr.splitlines() if WARNED in line]
    assert len(warned) == 1, str(result)
    assert f"the state directory {state}" in warned[0] and "tmpfs" in warned[0], warned[0]
    assert "pay for every video again" in warned[0] and "--state" in warned[0] and SCRATCH_ENV in warned[0]
    assert result.stderr.index(WARNED) < result.stderr.index("simulator listening"), str(result)  # before any send
    again = run_cli(*run_args("run", manifest, state, "--simulate", *QUICK), cwd=tmp_path, key=None,
                    env={SCRATCH_ENV: "1"})
    assert again.code == 0 and WARNED not in again.stderr, str(again)


def test_log_json_carries_the_warning_as_one_record(tmp_path: Path, shm: Path) -> None:
    manifest = write_manifest(tmp_path)
    state = shm / "state"
    result = run_cli("--log-json", *run_args("run", manifest, state, "--simulate", *QUICK), cwd=tmp_path, key=None,
                     env=LOUD)
    assert result.code == 0, str(result)
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    emptied = [record for record in records if record.get("event") == "emptied_at_boot"]
    assert len(emptied) == 1, str(result)
    assert emptied[0]["folder"] == str(state.resolve()) and emptied[0]["how"] == "tmpfs", emptied[0]
    assert emptied[0]["holds"] == ["ledger", "videos"] and WARNED in emptied[0]["message"], emptied[0]


def test_plan_warns_too_and_a_state_on_disk_is_not_warned_about(tmp_path: Path, shm: Path, on_disk: Path) -> None:
    manifest = write_manifest(tmp_path)
    planned = run_cli("plan", str(manifest), "--state", str(shm / "state"), cwd=tmp_path, key=None, env=LOUD)
    assert planned.code == 0 and planned.stderr.count(WARNED) == 1, str(planned)
    for command in ("plan", "run"):
        extra = ("--simulate", *QUICK) if command == "run" else ()
        kept = run_cli(*run_args(command, manifest, on_disk / "state", *extra), cwd=tmp_path, key=None, env=LOUD)
        assert kept.code == 0 and WARNED not in kept.stderr, str(kept)


def test_a_videos_folder_mounted_apart_on_a_tmpfs_is_named_alone(tmp_path: Path, on_disk: Path,
                                                                  small_disk: Callable[..., Path]) -> None:
    """The ledger on disk, its videos' folder a tmpfs mounted at state/outputs: one warning, of the videos only."""
    manifest = write_manifest(tmp_path)
    state = on_disk / "state"
    small_disk(state / "outputs", size="16m")
    result = run_cli(*run_args("run", manifest, state, "--simulate", *QUICK), cwd=tmp_path, key=None, env=LOUD)
    assert result.code == 0, str(result)
    warned = [line for line in result.stderr.splitlines() if WARNED in line]
    assert len(warned) == 1 and f"the videos' folder {state / 'outputs'}" in warned[0], str(result)
    assert "lost" in warned[0] and "pay for every video again" not in warned[0], warned[0]


def test_a_ledger_copied_onto_a_tmpfs_is_warned_about(tmp_path: Path, shm: Path) -> None:
    manifest = write_manifest(tmp_path)
    made = run_cli(*run_args("run", manifest, tmp_path / "state", "--simulate", *QUICK), cwd=tmp_path, key=None)
    assert made.code == 0 and WARNED not in made.stderr, str(made)  # the suite's "I know": quiet in /tmp
    copied = run_cli("ledger", "copy", str(tmp_path / "state"), str(shm / "copy"), cwd=tmp_path, env=LOUD)
    assert copied.code == 0 and copied.stderr.count(WARNED) == 1, str(copied)
    assert f"the state directory {shm / 'copy'}" in copied.stderr and "Copy the ledger again" in copied.stderr
