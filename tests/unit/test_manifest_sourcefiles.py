"""Whether a manifest's files changed since it was loaded (the run stops submitting when they did): a save of
other bytes is an edit, of the manifest or of a data file it reads; a `touch`, or a save of the same bytes, is
not (crash-window review, 2026-12-04: those stopped a run for nothing)."""

from __future__ import annotations

import os
from pathlib import Path

from fifo_swap import no_block

from runner.manifest import load_manifest
from runner.manifest.sourcefiles import EditWatch

MANIFEST = """\
name: watched
model: kling-v3.0-pro-t2v
prompt: "{prompt}"
defaults:
  duration: 5
matrix:
  rows: {file: rows.csv}
"""


def _load(tmp_path: Path) -> tuple[Path, Path, EditWatch]:
    manifest, rows = tmp_path / "m.yaml", tmp_path / "rows.csv"
    manifest.write_text(MANIFEST, encoding="utf-8")
    rows.write_text("prompt\na fox\nan owl\n", encoding="utf-8")
    return manifest, rows, EditWatch(load_manifest(manifest))


def _later(path: Path) -> None:
    """Its modification time a second later, its bytes the same (a touch, a sync tool)."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def test_nothing_changed_is_no_edit_and_a_touch_is_none_either(tmp_path: Path) -> None:
    manifest, rows, watch = _load(tmp_path)
    assert watch() is None
    _later(manifest)
    _later(rows)
    assert watch() is None
    same = tmp_path / "saved.tmp"  # an editor's atomic save of the very same bytes: a new inode
    same.write_bytes(manifest.read_bytes())
    os.replace(same, manifest)
    assert watch() is None


def test_a_save_of_other_bytes_is_an_edit_of_the_manifest_or_of_its_data_file(tmp_path: Path) -> None:
    _, rows, watch = _load(tmp_path)
    rows.write_text("prompt\na fox\n", encoding="utf-8")
    assert watch() == str(rows)
    (tmp_path / "again").mkdir()
    manifest2, _, watch2 = _load(tmp_path / "again")
    manifest2.write_text(MANIFEST.replace("duration: 5", "duration: 10"), encoding="utf-8")
    assert watch2() == str(manifest2)


def test_a_file_removed_is_an_edit(tmp_path: Path) -> None:
    _, rows, watch = _load(tmp_path)
    rows.unlink()
    assert watch() == str(rows)


def test_a_data_file_replaced_by_a_fifo_is_an_edit_and_the_watch_does_not_block_on_it(tmp_path: Path) -> None:
    """The watch read the files again with a plain open(): a FIFO there blocked the run's submit lane forever."""
    _, rows, watch = _load(tmp_path)
    rows.unlink()
    os.mkfifo(rows)
    seen: list[str | None] = []
    assert no_block(lambda: seen.append(watch()), rows) is None
    assert seen == [str(rows)]
