"""The manifest digest decides whether a run re-plans: it must see the value files too."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.manifest import load_manifest

MANIFEST = """\
name: digest
prompt: "a {subject}"
matrix:
  subject: {file: subjects.txt}
  rows: {file: rows.csv}
output: "{subject}-{style}.mp4"
"""


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subjects.txt").write_text("fox\nowl\n")
    (tmp_path / "rows.csv").write_text("style,duration\nink,5\n")
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    return path


def test_editing_a_value_file_changes_the_digest(manifest: Path) -> None:
    """Editing subjects.txt or rows.csv re-plans the next run, like editing the manifest does."""
    before = load_manifest(manifest.name).digest
    assert load_manifest(manifest.name).digest == before  # stable while nothing changes
    (manifest.parent / "subjects.txt").write_text("fox\nowl\nbear\n")
    after_axis = load_manifest(manifest.name).digest
    assert after_axis != before
    (manifest.parent / "rows.csv").write_text("style,duration\nink,5\nchalk,10\n")
    assert load_manifest(manifest.name).digest != after_axis


def test_comments_in_the_manifest_change_the_digest_but_not_the_keys(manifest: Path) -> None:
    """A comment re-plans (cheaply) yet every job keeps its key: nothing is paid again."""
    from runner.manifest import expand

    before = load_manifest(manifest.name)
    keys = [job.key for job in expand(before)]
    manifest.write_text("# a comment\n" + MANIFEST)
    after = load_manifest(manifest.name)
    assert after.digest != before.digest
    assert [job.key for job in expand(after)] == keys


def test_the_digest_does_not_depend_on_how_the_manifest_path_was_typed(manifest: Path) -> None:
    """The crash-window review: two runners of one file on one PostgreSQL ledger, one started as `run m.yaml`, the
    other as `run /abs/m.yaml`, got two digests (the value files' paths as typed were hashed): each took the other's
    registration for another version of the manifest and stopped submitting."""
    relative = load_manifest(manifest.name).digest
    assert load_manifest(manifest).digest == relative
    assert load_manifest(Path("..") / manifest.parent.name / manifest.name).digest == relative
    (manifest.parent / "subjects.txt").write_text("owl\nfox\n")  # the same lines in another order: another plan
    assert load_manifest(manifest).digest != relative
