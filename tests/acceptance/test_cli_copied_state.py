"""A state directory copied by the operator's own tools (``cp -a``, ``rsync -a``) and run from the copy while the
original is in use, or after the original went on (copy hunt, 2026-12-05). The copy carries the ledger, its WAL and
its commit mark, all consistent with each other, so the mark saw nothing wrong: the copy's run read every job the
original sent after the copy as pending and paid for it again, and two hosts "sharing" a batch by copying the folder
paid for every pending job twice. The mark says where the ledger was last opened for writing: a run from another
folder now looks there (this host) or at the run the ledger records (another host) before it sends anything."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from runner.boot import boot_id

from test_cli_support import (
    SIX_JOBS_TWO_AT_ONCE,
    Provider,
    ProviderFactory,
    counts,
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
TWO = SIX.replace("[cat, dog, owl]", "[cat]")


def _copy(state: Path, to: Path) -> None:
    """``cp -a state to``: every file as it is now, the WAL and the mark included."""
    shutil.copytree(state, to, symlinks=True)


def _live_run(tmp_path: Path, sim: Provider) -> tuple[Path, Path, subprocess.Popen[str]]:
    """A run of six jobs, two at a time, whose first two are running at the provider (an hour each)."""
    manifest = write_manifest(tmp_path, SIX, name="six.yaml")
    state = tmp_path / "state"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    wait_for(lambda: sim.accepted() == 2 or proc.poll() is not None, what="the run's first two submits")
    assert sim.accepted() == 2, finish_cli(proc)
    wait_for(lambda: jobs_running(state) == 2, what="the two task ids recorded")
    return manifest, state, proc


def test_a_copy_of_a_state_directory_a_run_is_using_sends_nothing(tmp_path: Path, provider: ProviderFactory) -> None:
    """The operator copies the folder to add a second runner; the copy's run sent the four jobs the original was
    about to send (both would pay for them): it now refuses, naming the run and the folder, and sends nothing."""
    sim = provider(task_seconds=3600)
    manifest, state, proc = _live_run(tmp_path, sim)
    try:
        copy = tmp_path / "second" / "state"
        _copy(state, copy)
        second = run_cli(*run_args("submit", manifest, copy, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
        assert sim.accepted() == 2, f"the copy paid for {sim.accepted() - 2} jobs the original run sends too\n{second}"
        assert second.code == 2, str(second)
        assert str(state) in second.stderr and "--ledger" in second.stderr, str(second)
        assert "Nothing was sent" in second.stderr, str(second)
    finally:
        proc.send_signal(signal.SIGTERM)
        finish_cli(proc)


def test_a_copy_taken_before_the_original_went_on_sends_nothing(tmp_path: Path, provider: ProviderFactory) -> None:
    """Copied after a run ended, the original then sent four more jobs; a run from the copy read them pending and
    paid for them again (10 tasks): it now refuses, saying the original went on after the copy."""
    sim = provider(task_seconds=3600)
    manifest = write_manifest(tmp_path, TWO, name="six.yaml")
    state = tmp_path / "state"
    first = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 3 and sim.accepted() == 2, str(first)
    copy = tmp_path / "backup" / "state"
    _copy(state, copy)
    write_manifest(tmp_path, SIX.replace("concurrency: 2", "concurrency: 6"), name="six.yaml")
    on = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert on.code == 3 and sim.accepted() == 6, str(on)

    from_copy = run_cli(*run_args("submit", manifest, copy, *sim.engine_args()), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"paid again: {sim.accepted()} tasks\n{from_copy}"
    assert from_copy.code == 2 and str(state) in from_copy.stderr, str(from_copy)


def test_a_copy_of_an_idle_state_directory_runs(tmp_path: Path, provider: ProviderFactory) -> None:
    """No false alarm: a copy of a folder no run went on with (a move by copy, a spare) runs, saying once that the
    original is marked moved to it: a run from the original, which would pay again for what the copy sends, is
    refused (test_cli_copied_original.py)."""
    sim = provider(task_seconds=0.05)
    manifest = write_manifest(tmp_path, TWO, name="six.yaml")
    state = tmp_path / "state"
    first = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 3 and sim.accepted() == 2, str(first)
    copy = tmp_path / "copy" / "state"
    _copy(state, copy)
    done = run_cli(*run_args("run", manifest, copy, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0 and sim.accepted() == 2 and counts(copy, "six") == {"done": 2}, str(done)
    assert f"{state} is marked moved here" in done.stderr, str(done)  # the original is refused now: said once
    again = run_cli(*run_args("run", manifest, copy, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and "marked moved" not in again.stderr, str(again)



def test_a_state_directory_moved_after_its_run_was_killed_runs_on(tmp_path: Path, provider: ProviderFactory) -> None:
    """Its run record never ended (kill -9), and the folder it names is gone: the move of a folder after a crash,
    not a copy; the jobs it sent are collected, the others sent once."""
    slow = provider(task_seconds=3600)
    manifest, killed, proc = _live_run(tmp_path, slow)
    proc.send_signal(signal.SIGKILL)
    finish_cli(proc)
    moved = tmp_path / "moved" / "state"
    _copy(killed, moved)
    shutil.rmtree(killed)
    again = run_cli(*run_args("submit", manifest, moved, *slow.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert again.code == 3 and slow.accepted() == 6 and slow.max_per_body() == 1, str(again)


def _as_from(copy: Path, host: str, *, ended: bool = False, days_ago: float = 0) -> None:
    """The copy as it would arrive from ``host``: its run recorded there, its mark naming that host; ``days_ago``:
    everything in it written that long before."""
    shift = days_ago * 86400
    with sqlite3.connect(copy / "ledger.db") as db:
        db.execute("UPDATE runs SET host = ?, started_at = started_at - ?", (host, shift))
        db.execute("UPDATE attempts SET started_at = started_at - ?, ended_at = ended_at - ?", (shift, shift))
        number, at = db.execute("SELECT value FROM meta WHERE key = 'commits'").fetchone()[0].split()
        db.execute("UPDATE meta SET value = ? WHERE key = 'commits'", (f"{number} {float(at) - shift!r}",))
        if ended:
            db.execute("UPDATE runs SET ended_at = started_at, exit_code = 3 WHERE ended_at IS NULL")
    db.close()
    mark = copy / "ledger.mark"
    lines = mark.read_text().splitlines()
    lines = [f"path {host}:{line.split(':', 1)[1]}" if line.startswith("path ") else line for line in lines]
    mark.write_text("\n".join(lines) + "\n")


def _arrived(tmp_path: Path, sim: Provider) -> tuple[Path, Path]:
    """A copy of a folder a run is using, taken as it would be by rsync from another host: (manifest, copy)."""
    manifest, state, proc = _live_run(tmp_path, sim)
    copy = tmp_path / "arrived" / "state"
    try:
        _copy(state, copy)
    finally:
        proc.send_signal(signal.SIGTERM)
        finish_cli(proc)
    return manifest, copy


def test_a_copy_from_another_host_whose_run_has_not_ended_sends_nothing(tmp_path: Path,
                                                                         provider: ProviderFactory) -> None:
    """rsync of a folder a run on another host is using: that run goes on there and pays for what it sends; the
    copy's run would pay for the same jobs. Refused, naming the host; once that run's record says it ended, the
    copy runs."""
    assert socket.gethostname() != "build-7"
    sim = provider(task_seconds=3600)
    manifest, copy = _arrived(tmp_path, sim)
    _as_from(copy, "build-7")
    second = run_cli(*run_args("submit", manifest, copy, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 2, f"the copy paid for {sim.accepted() - 2} jobs the run on build-7 sends too\n{second}"
    assert second.code == 2 and "build-7" in second.stderr and "Nothing was sent" in second.stderr, str(second)
    typed = second.stderr.split("set this copy's mark aside (`", 1)[1].split("`", 1)[0]
    assert typed == f"mv {copy / 'ledger.mark'} {copy / 'ledger.mark.old'}", str(second)
    _as_from(copy, "build-7", ended=True)
    third = run_cli(*run_args("submit", manifest, copy, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert third.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(third)


def test_a_copy_from_another_host_whose_run_last_wrote_days_ago_runs_with_a_warning(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """An unended run that last wrote two days before: most likely ended or died (a host down, its disk moved):
    the copy runs, warned that it would pay again for what that run sent after the copy."""
    sim = provider(task_seconds=3600)
    manifest, copy = _arrived(tmp_path, sim)
    _as_from(copy, "build-7", days_ago=2)
    second = run_cli(*run_args("submit", manifest, copy, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert second.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(second)
    assert "build-7" in second.stderr and "over a day ago" in second.stderr, str(second)


def test_the_same_folder_under_another_host_name_after_its_run_was_killed_runs_on(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """A container restarted (a new host name each time) or a pod rescheduled with its volume, after its run was
    killed: the very file, not a copy. It runs on: the two tasks sent collected, the four others sent once."""
    sim = provider(task_seconds=3600)
    manifest, state, proc = _live_run(tmp_path, sim)
    proc.send_signal(signal.SIGKILL)
    finish_cli(proc)
    _as_from(state, "runner-7f9c2d-x4kq")
    again = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert again.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(again)
    assert "copied" not in again.stderr, str(again)


def test_a_state_directory_committed_to_git_and_checked_out_elsewhere_runs_on(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """Committed after its run ended (no WAL), cloned on another host (its files' times reset): consistent, nothing
    refused, the jobs done there not sent again."""
    sim = provider(task_seconds=0.05)
    manifest = write_manifest(tmp_path, TWO, name="six.yaml")
    state = tmp_path / "repo" / "state"
    first = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 0 and sim.accepted() == 2, str(first)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=state.parent, check=True)
    subprocess.run([*git, "add", "-A"], cwd=state.parent, check=True)
    subprocess.run([*git, "commit", "-qm", "state"], cwd=state.parent, check=True)
    subprocess.run([*git, "clone", "-q", str(state.parent), str(tmp_path / "clone")], check=True)
    clone = tmp_path / "clone" / "state"
    _as_from(clone, "laptop")
    write_manifest(tmp_path, SIX, name="six.yaml")
    done = run_cli(*run_args("run", manifest, clone, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0 and sim.accepted() == 6 and sim.max_per_body() == 1, str(done)
    assert counts(clone, "six") == {"done": 6}


ANOTHER_BOOT = "00000000-0000-4000-8000-000000000000"  # another machine of this name, or this one before a restart
ANOTHER_CONTAINER = f"{boot_id()}/4026500000"  # this kernel, another PID namespace (a container of one --hostname)


def _space_is(state: Path, space: str, *, path: str | None = None) -> None:
    """The folder's mark as another PID space wrote it: another machine or container of this host's name (``path``: its
    ledger's path there), or this one before it restarted."""
    mark = state / "ledger.mark"
    lines = [line for line in mark.read_text().splitlines() if not line.startswith("pids ")]
    if path is not None:
        lines = [f"path {socket.gethostname()}:{path}" if line.startswith("path ") else line for line in lines]
    mark.write_text("\n".join([*lines, f"pids {space}"]) + "\n")


@pytest.mark.skipif(boot_id() is None, reason="Linux's boot id")
@pytest.mark.parametrize(("space", "there"), [(ANOTHER_BOOT, "the same path"), (ANOTHER_BOOT, "a path not here"),
                                              (ANOTHER_CONTAINER, "the same path")])
def test_a_copy_from_another_machine_of_the_same_host_name_whose_run_has_not_ended_sends_nothing(
    tmp_path: Path, provider: ProviderFactory, space: str, there: str,
) -> None:
    """Two VMs both named `ubuntu` (an image never renamed), or containers of one --hostname: the folder a run uses on
    one is rsynced to the other, most often to the same path. Its mark names this host by name, so it was taken for
    this host's own folder and not looked at: the copy paid for the four jobs the run there sends too. The mark's PID
    space says another machine: refused as a copy from another host, naming it; once that run ended, it runs."""
    sim = provider(task_seconds=3600)
    manifest, copy = _arrived(tmp_path, sim)
    _space_is(copy, space, path=os.path.realpath(copy / "ledger.db") if there == "the same path"
              else "/srv/videos/state/ledger.db")
    second = run_cli(*run_args("submit", manifest, copy, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 2, f"the copy paid for {sim.accepted() - 2} jobs the other machine's run sends\n{second}"
    assert second.code == 2 and "Nothing was sent" in second.stderr, str(second)
    assert f"another machine also named {socket.gethostname()}" in second.stderr, str(second)
    _as_from(copy, socket.gethostname(), ended=True)
    third = run_cli(*run_args("submit", manifest, copy, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert third.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(third)


@pytest.mark.skipif(boot_id() is None, reason="Linux's boot id")
@pytest.mark.parametrize("moved", [False, True])
def test_a_state_directory_whose_run_a_reboot_killed_runs_on(tmp_path: Path, provider: ProviderFactory,
                                                             moved: bool) -> None:
    """No false alarm: the machine restarted (a new boot id, the same name) under a run, its folder then used as it is
    or moved (`mv`, the very files): the two tasks sent collected, the four others sent once."""
    sim = provider(task_seconds=3600)
    manifest, state, proc = _live_run(tmp_path, sim)
    proc.send_signal(signal.SIGKILL)
    finish_cli(proc)
    _space_is(state, ANOTHER_BOOT)
    if moved:
        (tmp_path / "moved").mkdir()
        state = state.rename(tmp_path / "moved" / "state")
    again = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert again.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(again)
    assert "copied" not in again.stderr and "copy of" not in again.stderr, str(again)


@pytest.mark.skipif(boot_id() is None, reason="Linux's boot id")
def test_a_copy_of_a_folder_whose_run_a_reboot_killed_is_not_held_by_a_process_of_the_new_boot(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """The run was killed by a reboot; its lock line names its PID, which the new boot gave to some other process. The
    copy was refused "a run (pid N) is using the same ledger now", waiting for a run that does not exist: it runs,
    the original marked moved to it."""
    sim = provider(task_seconds=3600)
    manifest, state, proc = _live_run(tmp_path, sim)
    proc.send_signal(signal.SIGKILL)
    finish_cli(proc)
    _space_is(state, ANOTHER_BOOT)
    line = (state / "ledger.lock").read_text(encoding="utf-8").split()
    (state / "ledger.lock").write_text(f"{os.getpid()} {line[1]} {line[2]} pids={ANOTHER_BOOT}\n", encoding="utf-8")
    copy = tmp_path / "copy" / "state"
    _copy(state, copy)
    done = run_cli(*run_args("submit", manifest, copy, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert done.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(done)
    assert f"{state} is marked moved here" in done.stderr, str(done)
