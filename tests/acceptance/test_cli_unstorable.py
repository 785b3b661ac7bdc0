"""Where a video cannot be stored, it is not paid for (operator probe, 2026-12-04): a state directory whose
``outputs`` folder is a link to another disk (refused: nothing is written outside the state directory), or a
folder the runner may not write in. Before, the run paid for every job of the batch and then found, one
download at a time, that no video could be stored. Now the first job's folder is checked before its POST:
nothing is sent, the run exits 6 and says what to fix; once fixed, the next run pays for each job once."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from runner.testing import fill_disk

from test_cli_support import (
    SIX_JOBS,
    Provider,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

EXIT_LOCAL = 6


def _finishes_paying_each_job_once(sim: Provider, manifest: Path, state: Path, cwd: Path) -> None:
    """The run after the operator's fix: the six jobs done, each paid for once."""
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=cwd)
    assert again.code == 0, str(again)
    assert counts(state, "six") == {"done": 6}
    assert sim.accepted() == 6 and sim.max_per_body() == 1


def test_an_outputs_folder_linked_outside_the_state_directory_is_found_before_anything_is_paid(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    sim = provider(task_seconds=0.1)
    manifest = write_manifest(tmp_path, SIX_JOBS.replace("concurrency: 1", "concurrency: 3"), name="six.yaml")
    state = tmp_path / "state"
    elsewhere = tmp_path / "bigdisk"
    elsewhere.mkdir()
    state.mkdir()
    (state / "outputs").symlink_to(elsewhere, target_is_directory=True)

    looked = run_cli(*run_args("plan", manifest, state), cwd=tmp_path)  # plan says it first, creating nothing
    assert looked.code == 0 and "a run would send none of these jobs" in looked.stderr, str(looked)
    assert "leads outside the state directory" in looked.stderr and list(elsewhere.iterdir()) == []

    first = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == EXIT_LOCAL, str(first)
    assert sim.accepted() == 0, f"{sim.accepted()} task(s) paid for videos that could not be stored"
    assert "leads outside the state directory" in first.stderr, str(first)
    assert "6 job(s) were not sent" in first.stderr and "Nothing was paid for them" in first.stderr, str(first)
    assert first.stderr.count("was not sent: ") == 1, str(first)  # one line for the folder, not one a job
    assert counts(state, "six") == {"pending": 6}
    assert list(elsewhere.iterdir()) == []

    (state / "outputs").unlink()  # the operator's fix
    _finishes_paying_each_job_once(sim, manifest, state, tmp_path)


def test_a_file_where_the_output_folder_should_be_is_found_before_anything_is_paid(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    sim = provider(task_seconds=0.1)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    state = tmp_path / "state"
    (state / "outputs").mkdir(parents=True)
    (state / "outputs" / "six").write_text("not a folder")  # root or not, nothing can be stored under it

    looked = run_cli(*run_args("plan", manifest, state), cwd=tmp_path)
    assert looked.code == 0 and "outputs/six is not a folder" in looked.stderr, str(looked)
    # (--new-ledger: a file under outputs/ and no ledger.db would be refused as a ledger gone missing)
    first = run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--new-ledger"), cwd=tmp_path)
    assert first.code == EXIT_LOCAL, str(first)
    assert sim.accepted() == 0, f"{sim.accepted()} task(s) paid for videos that could not be stored"
    assert "Not a directory" in first.stderr and "outputs/six" in first.stderr, str(first)
    assert counts(state, "six") == {"pending": 6}


def test_a_ledger_restored_from_an_older_backup_does_not_pay_again_for_videos_on_disk(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """The README's advice for a lost ledger is to restore it from a backup. One older than the last run does
    not know the jobs submitted since: they look pending, while their videos sit at their output names. Each
    such job is held back, unsent (exit 6, the file named); before, the run paid for them all again and stored
    the new videos beside the old (operator sweep, 2026-12-04)."""
    sim = provider(task_seconds=0.05)
    three = SIX_JOBS.replace("[cat, dog, owl]", "[cat]").replace("concurrency: 1", "concurrency: 3")
    manifest = write_manifest(tmp_path, three, name="six.yaml")
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    backup = tmp_path / "backup.db"
    shutil.copyfile(state / "ledger.db", backup)  # the nightly backup: 2 jobs
    write_manifest(tmp_path, SIX_JOBS.replace("concurrency: 1", "concurrency: 3"), name="six.yaml")
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 6
    for lost in state.glob("ledger.db*"):
        lost.unlink()
    shutil.copyfile(backup, state / "ledger.db")  # the operator restores it
    refused = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert refused.code == 2 and "is older than what this state directory last recorded" in refused.stderr
    (state / "ledger.mark").rename(state / "ledger.mark.old")  # and goes on past the commit mark on purpose

    restored = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert restored.code == EXIT_LOCAL, str(restored)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, "videos on disk paid for again"
    assert "4 job(s) were not sent" in restored.stderr and "restored from a backup" in restored.stderr, str(restored)
    assert counts(state, "six") == {"done": 2, "pending": 4}
    assert not list((state / "outputs" / "six").glob("*.*.mp4"))  # nothing stored beside


def test_a_full_disk_is_found_before_anything_is_paid_and_the_next_run_after_freeing_space_finishes(
    tmp_path: Path, provider: ProviderFactory, small_disk: Callable[..., Path],
) -> None:
    """``state/outputs`` on a disk with no room left (a real one: a small tmpfs, filled). An empty file still fits,
    so the folder's probe passed, and a run paid for a wave of videos its downloads could not store — a nightly
    run once more every night. Now the room is looked at before each submit: nothing is paid, exit 6, and the
    run says how much is free and what the videos may need; with space freed, the next run finishes."""
    sim = provider(task_seconds=0.1)
    manifest = write_manifest(tmp_path, SIX_JOBS.replace("concurrency: 1", "concurrency: 3"), name="six.yaml")
    state = tmp_path / "state"
    disk = small_disk(state / "outputs", size="160m")  # room for the reserve and six videos, once freed
    registered = run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "0")), cwd=tmp_path)
    assert registered.code == 3 and sim.accepted() == 0, str(registered)  # the ledger knows the jobs, none sent
    filler = fill_disk(disk)
    looked = run_cli(*run_args("plan", manifest, state), cwd=tmp_path)  # plan says it first
    assert looked.code == 0, str(looked)
    assert "has 0 MiB free, and the 6 video(s) left to make may take about 36 MiB" in looked.stderr, str(looked)

    for _night in range(2):
        full = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
        assert full.code == EXIT_LOCAL, str(full)
        assert sim.accepted() == 0, f"{sim.accepted()} task(s) paid for videos that could not be stored"
        assert "free space (or lower the concurrency) and run again" in full.stderr, str(full)
        assert "Traceback" not in full.stderr
        assert counts(state, "six") == {"pending": 6}

    filler.unlink()  # the operator's fix
    _finishes_paying_each_job_once(sim, manifest, state, tmp_path)


def test_the_partial_downloads_a_killed_run_left_are_removed_by_the_next_run(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """`kill -9` (systemd's final SIGKILL, the OOM killer, a power cut) during downloads left each one's temporary
    file, up to a whole video, which no later run, `verify` or `status` removed (operator sweep, 2026-12-05: four
    of 25 MB each after a clean run). The run after one that did not end removes them, and says so."""
    sim = provider(task_seconds=30)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    state = tmp_path / "state"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    try:
        wait_for(lambda: sim.accepted() >= 1, what="a first paid task")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    folder = state / "outputs" / "six"
    folder.mkdir(parents=True, exist_ok=True)
    left = [folder / f".clip-{i}.mp4.part-{i:012x}" for i in range(3)]  # what its downloads on the wire left
    for path in left:
        path.write_bytes(b"\0" * 1000)
    video = folder / "kept.mp4"  # a file of the operator's: not a temporary name
    video.write_bytes(b"mine")
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args("--max-runtime", "1")), cwd=tmp_path)
    assert "removed 3 partial download(s) the last run left when it was killed" in again.stderr, str(again)
    assert not any(path.exists() for path in left) and video.read_bytes() == b"mine"
    clean = run_cli(*run_args("run", manifest, state, *sim.engine_args("--max-runtime", "1")), cwd=tmp_path)
    assert "partial download" not in clean.stderr, str(clean)  # after a run that ended, nothing is walked
