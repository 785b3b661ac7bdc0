"""Where a command's ledger is when --state is not given: found from the manifest, as git finds .git."""

from __future__ import annotations

import os
from pathlib import Path

from runner.cli.common import find_state_dir, resolve_state


def _manifest(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("name: x\n", encoding="utf-8")
    return path


def test_the_nearest_state_folder_above_the_manifest_wins(tmp_path: Path) -> None:
    """a/state and a/b/state: a manifest in a/b/c uses a/b/state; one in a/d uses a/state."""
    (tmp_path / "a" / "state").mkdir(parents=True)
    (tmp_path / "a" / "b" / "state").mkdir(parents=True)
    assert find_state_dir(_manifest(tmp_path / "a" / "b" / "c" / "x.yaml")) == tmp_path / "a" / "b" / "state"
    assert find_state_dir(_manifest(tmp_path / "a" / "d" / "x.yaml")) == tmp_path / "a" / "state"


def test_no_state_folder_means_state_beside_the_manifest(tmp_path: Path) -> None:
    """Nothing found up the tree: state/ in the manifest's own folder (a file named state does not count)."""
    (tmp_path / "state").write_text("not a folder")
    manifest = _manifest(tmp_path / "m" / "x.yaml")
    assert find_state_dir(manifest) == tmp_path / "m" / "state"


def test_the_answer_does_not_depend_on_the_working_directory(tmp_path: Path) -> None:
    """A relative manifest path is resolved from where it is, not from where the command runs."""
    (tmp_path / "repo" / "state").mkdir(parents=True)
    _manifest(tmp_path / "repo" / "manifests" / "x.yaml")
    (tmp_path / "repo" / "sub").mkdir()
    seen: set[Path] = set()
    for cwd, relative in ((tmp_path / "repo", "manifests/x.yaml"), (tmp_path / "repo" / "sub", "../manifests/x.yaml")):
        before = os.getcwd()
        os.chdir(cwd)
        try:
            seen.add(resolve_state(None, Path(relative)))
        finally:
            os.chdir(before)
    assert seen == {tmp_path / "repo" / "state"}


def test_a_symlinked_manifest_is_followed_to_its_real_folder(tmp_path: Path) -> None:
    """A link to a manifest finds the ledger of the real file's folder."""
    (tmp_path / "repo" / "state").mkdir(parents=True)
    real = _manifest(tmp_path / "repo" / "manifests" / "x.yaml")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "x.yaml").symlink_to(real)
    assert find_state_dir(tmp_path / "links" / "x.yaml") == tmp_path / "repo" / "state"


def test_a_flag_or_no_manifest_keep_their_meaning(tmp_path: Path) -> None:
    """--state (or RUNNER_STATE_DIR) wins; without a manifest (collect, show) the default is ./state."""
    manifest = _manifest(tmp_path / "x.yaml")
    assert resolve_state(tmp_path / "mine", manifest) == tmp_path / "mine"
    assert resolve_state(None, None) == Path("state")
