"""What a killed export or report left beside the names it writes goes; a live writer's file and anything else stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner import host
from runner.reporting import whole_file
from runner.reporting.left_behind import LeftBehind


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_a_dead_writers_temporary_files_of_the_names_cleared_go(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / "sub").mkdir()
    names = [f".metadata.jsonl.tmp-{dead}-0a1b2c3d", f".metadata.jsonl.tmp-{alive}-0a1b2c3d",
             f".README.md.tmp-{dead}-99", f"sub/.cat.mp4.link-{dead}", f"sub/.dog.mp4.link-{dead}", ".hidden",
             "sub/cat.mp4"]
    for name in names:
        (tmp_path / name).write_text("x")
    os.symlink(tmp_path / "sub" / "cat.mp4", tmp_path / f".index.html.tmp-{dead}-ab")  # a link: not a file of ours
    left = LeftBehind(tmp_path)
    for rel in ("metadata.jsonl", "sub/cat.mp4", "index.html", "nowhere/x.mp4"):
        left.clear(rel)
    assert left.removed == 2
    kept = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if not p.is_dir() or p.is_symlink())
    assert kept == sorted([f".metadata.jsonl.tmp-{alive}-0a1b2c3d", f".README.md.tmp-{dead}-99",
                           f"sub/.dog.mp4.link-{dead}", ".hidden", "sub/cat.mp4", f".index.html.tmp-{dead}-ab"])


def test_a_temporary_file_another_machine_is_writing_into_a_shared_folder_is_left_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export folder on NFS that two machines write (the folder's lock holds on one host only): the other machine's
    export, still writing, had its temporary file removed by this one's, whose PID named no process here. The writer's host (and PID space)
    is in the name: another's is left alone; this host's dead writer's file still goes."""
    dead = _dead_pid()
    with monkeypatch.context() as there:  # the other machine's export names its temporary file
        there.setattr(host.socket, "gethostname", lambda: "render-2")
        there.setattr(whole_file.os, "getpid", lambda: dead)  # (its PID: no process here)
        theirs = whole_file.temp_name(tmp_path / "metadata.jsonl")
        their_link = f".cat.mp4.link-{dead}@{host.place_tag()}"
    with monkeypatch.context() as here:  # and this one's, killed
        here.setattr(whole_file.os, "getpid", lambda: dead)
        ours = whole_file.temp_name(tmp_path / "metadata.jsonl")
    our_link = f".dog.mp4.link-{dead}@{host.place_tag()}"
    for name in (theirs.name, ours.name, their_link, our_link):
        (tmp_path / name).write_text("x")
    left = LeftBehind(tmp_path)
    for rel in ("metadata.jsonl", "cat.mp4", "dog.mp4"):
        left.clear(rel)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([theirs.name, their_link])
    assert left.removed == 2
