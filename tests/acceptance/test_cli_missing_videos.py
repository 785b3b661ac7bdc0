"""Done jobs whose video was deleted or moved since: a run, `collect` and `status` say so while a download pays nothing.

A cleanup cron, an `rm` in the wrong folder: the next run said "done 3/3 … [complete]", exit 0, and `runner status`
100 % done, not a word of the videos gone, until the provider's result URLs had expired and the paid videos were lost
for good (only `runner verify` looked). The run's end says how many, the first paths, until when they can be
downloaded again, and the `runner verify` command with this run's --state; it downloads nothing itself and keeps its
exit code (a pipeline that moves its videos away on purpose is not failed), and pays for nothing again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
from pathlib import Path
from unittest import mock

from runner.ledger import open_ledger
from runner.reporting.missing import missing_videos

from test_cli_support import ProviderFactory, done_trio, provider, run_args, run_cli, status, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def test_a_run_collect_and_status_say_which_done_videos_are_gone_and_verify_brings_them_back(
        tmp_path: Path, provider: ProviderFactory) -> None:
    manifest, state, sim, _ = done_trio(tmp_path, provider)
    downloads = sim.sim.stats()["downloads"]
    (state / "outputs" / "trio" / "cat.mp4").unlink()  # deleted
    (tmp_path / "elsewhere").mkdir()
    shutil.move(state / "outputs" / "trio" / "dog.mp4", tmp_path / "elsewhere" / "dog.mp4")  # moved away

    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and "[complete]" in again.stderr, str(again)  # the jobs are done, paid for once
    said = [line for line in again.stderr.splitlines() if "not at their recorded path" in line]
    assert len(said) == 1, str(again)  # one line
    line = said[0]
    assert "2 done video(s) of trio" in line, line
    assert "outputs/trio/cat.mp4, outputs/trio/dog.mp4)" in line, line
    assert "nothing was paid or downloaded again" in line and "2 of them until " in line, line
    verify = re.search(r"`(runner verify [^`]*)` downloads them again", line)
    assert verify is not None and verify.group(1) == f"runner verify {shlex.quote(str(manifest))} --state" \
        f" {shlex.quote(str(state))}", line
    assert sim.accepted() == 3 and sim.sim.stats()["downloads"] == downloads  # nothing paid, nothing fetched unasked
    assert not (state / "outputs" / "trio" / "cat.mp4").exists()

    collect = run_cli(*run_args("collect", manifest, state, *sim.engine_args(), "--log-json"), cwd=tmp_path)
    events = [json.loads(text) for text in collect.stderr.splitlines() if text.startswith("{")]
    gone = [event for event in events if event.get("event") == "videos_missing"]
    assert collect.code == 0 and len(gone) == 1, str(collect)
    assert gone[0]["level"] == "warning" and gone[0]["count"] == 2 and gone[0]["restorable"] == 2, gone
    assert "2 done video(s) of trio are not at their recorded path" in gone[0]["message"], gone

    seen = status(tmp_path, manifest, state)
    assert seen["counts"]["done"] == 3 and seen["missing_videos"]["count"] == 2, seen
    assert seen["missing_videos"]["paths"] == ["outputs/trio/cat.mp4", "outputs/trio/dog.mp4"], seen
    assert seen["missing_videos"]["restorable"] == 2, seen
    text = run_cli("status", str(manifest), "--state", str(state), cwd=tmp_path)
    assert "2 not on disk" in text.stdout and "2 done video(s) are not at their recorded path" in text.stdout, str(text)

    # the command as printed brings them back, paying nothing; the next run says nothing more
    restored = run_cli(*shlex.split(verify.group(1))[1:], cwd=tmp_path)
    assert restored.code == 0 and "2 restored" in restored.stdout, str(restored)
    quiet = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert quiet.code == 0 and "not at their recorded path" not in quiet.stderr, str(quiet)
    assert status(tmp_path, manifest, state)["missing_videos"]["count"] == 0
    assert sim.accepted() == 3


def test_a_folder_removed_whole_counts_every_video_in_it(tmp_path: Path, provider: ProviderFactory) -> None:
    """`rm -rf outputs/trio`: one listing that fails, every job of it missing; nothing downloaded or paid."""
    manifest, state, sim, _ = done_trio(tmp_path, provider)
    shutil.rmtree(state / "outputs" / "trio")
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and "3 done video(s) of trio are not at their recorded path" in again.stderr, str(again)
    assert "outputs/trio/cat.mp4, outputs/trio/dog.mp4, …)" in again.stderr, str(again)
    assert sim.accepted() == 3 and not (state / "outputs" / "trio").exists()


def test_a_simulated_run_says_its_videos_cannot_come_back(tmp_path: Path) -> None:
    """`--simulate` (the demo): the simulator's tasks ended with its run, and `runner verify` refuses its ledger; the
    line says so and gives verify's --check-only, which lists them."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "S"
    sim_args = ("--simulate", "--sim-task-seconds", "0", "--rpm", "none")
    assert run_cli(*run_args("run", manifest, state, *sim_args), cwd=tmp_path).code == 0
    (state / "outputs" / "trio" / "owl.mp4").unlink()
    again = run_cli(*run_args("run", manifest, state, *sim_args), cwd=tmp_path)
    assert again.code == 0 and "1 done video(s) of trio are not at their recorded path (outputs/trio/owl.mp4)" \
        in again.stderr, str(again)
    check = re.search(r"`(runner verify [^`]*--check-only)` lists them", again.stderr)
    assert check is not None, str(again)
    listed = run_cli(*shlex.split(check.group(1))[1:], cwd=tmp_path)
    assert "missing  outputs/trio/owl.mp4" in listed.stdout, str(listed)


def test_a_folder_restored_from_a_partial_backup_with_its_old_times_is_checked_again(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """A run that found every video records its folders' stamps, and the next run lists none of them while they are
    the same (a no-op resume of a million jobs stays cheap); a folder restored from a backup that lacks a video, with
    its old modification time (`cp -a`, `rsync -a`), is a new inode with a new change time: it is listed again."""
    manifest, state, sim, _ = done_trio(tmp_path, provider)
    folder = state / "outputs" / "trio"
    with open_ledger(state, readonly=True) as ledger, \
            mock.patch.object(type(ledger), "recorded_paths", side_effect=AssertionError("listed again")):
        assert missing_videos(ledger, "trio", now=time.time()).count == 0  # nothing read: the stamps are the same
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup, ignore=shutil.ignore_patterns("owl.mp4"))  # a backup that missed one
    shutil.rmtree(folder)
    shutil.copytree(backup, folder)  # copies the folder's times too (copystat)
    os.utime(folder, ns=(backup.stat().st_atime_ns, backup.stat().st_mtime_ns))
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and "1 done video(s) of trio are not at their recorded path (outputs/trio/owl.mp4)" \
        in again.stderr, str(again)
    assert sim.accepted() == 3
