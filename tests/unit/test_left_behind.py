"""What a killed export or report left beside the names it writes goes; a live writer's file and anything else stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
