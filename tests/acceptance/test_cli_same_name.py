"""Two manifest files that say the same `name:` in one state directory (a copy made to try a variant): each run
replaces the other's jobs, so the run says so, naming both files (found by the operator probe of 2026-12-04:
`export a.yaml` showed b.yaml's prompts, and the videos moved to _orphans and back at every switch, silently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli_support import THREE_JOBS, ProviderFactory, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def test_a_second_file_with_the_same_name_is_named_in_a_warning(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    calm = write_manifest(tmp_path, THREE_JOBS, name="calm.yaml")
    state = tmp_path / "state"
    first = run_cli(*run_args("run", calm, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 0 and "same name" not in first.stderr, str(first)
    moved = tmp_path / "calm-renamed.yaml"
    calm.rename(moved)  # the same batch under a new file name, the old one gone: nothing to say
    renamed = run_cli(*run_args("run", moved, state, *sim.engine_args()), cwd=tmp_path)
    assert renamed.code == 0 and "same name" not in renamed.stderr, str(renamed)
    stormy = write_manifest(tmp_path, THREE_JOBS.replace("a quiet street", "a stormy street"), name="stormy.yaml")
    second = run_cli(*run_args("run", stormy, state, *sim.engine_args()), cwd=tmp_path)
    assert second.code == 0, str(second)
    line = next((line for line in second.stderr.splitlines() if "same name" in line), "")
    assert str(moved) in line and str(stormy) in line and "name: trio" in line, second.stderr
    again = run_cli(*run_args("run", stormy, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and "same name" not in again.stderr, str(again)  # planned already: said once


def test_two_manifests_whose_names_differ_only_by_case_are_refused_where_they_are_one_folder(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`name: Cats` and `name: cats` in one state directory keep their videos in outputs/Cats/ and outputs/cats/,
    one folder on a disk that does not tell case apart (macOS, exFAT, vfat, SMB): their videos mixed there, and a name
    of one held the other's video (the second's went beside it, a rename every run warned it could not make). Now plan
    and run of the second refuse (exit 2) naming both files and the fix, paying nothing; the first runs on. No such
    disk can be mounted here: ``outputs/cats`` is made a link to ``outputs/Cats``, which ``stat`` answers as such a
    disk does (the folder ``Cats`` for the name ``cats``)."""
    sim = provider()
    state = tmp_path / "state"
    upper = write_manifest(tmp_path, THREE_JOBS.replace("name: trio", "name: Cats"), name="Cats.yaml")
    assert run_cli(*run_args("run", upper, state, *sim.engine_args()), cwd=tmp_path).code == 0
    paid = sim.accepted()
    lower = write_manifest(tmp_path, THREE_JOBS.replace("name: trio", "name: cats").replace("quiet", "busy"),
                           name="cats.yaml")
    (state / "outputs" / "cats").symlink_to("Cats")
    for command in ("plan", "run"):
        args = run_args(command, lower, state, *(sim.engine_args() if command == "run" else ()))
        refused = run_cli(*args, cwd=tmp_path)
        assert refused.code == 2, str(refused)
        assert str(upper.resolve()) in refused.stderr and str(lower) in refused.stderr, str(refused)
        assert "`name:`" in refused.stderr and "--state" in refused.stderr, str(refused)
    assert sim.accepted() == paid
    assert run_cli(*run_args("run", upper, state, *sim.engine_args()), cwd=tmp_path).code == 0


def test_two_manifests_whose_names_differ_only_by_case_run_apart_where_the_disk_tells_case_apart(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """On ext4 `outputs/cats` is a folder of its own: the second manifest is a batch of its own and runs (refused, a
    healthy batch was stopped for nothing)."""
    sim = provider()
    state = tmp_path / "state"
    upper = write_manifest(tmp_path, THREE_JOBS.replace("name: trio", "name: Cats"), name="Cats.yaml")
    assert run_cli(*run_args("run", upper, state, *sim.engine_args()), cwd=tmp_path).code == 0
    lower = write_manifest(tmp_path, THREE_JOBS.replace("name: trio", "name: cats").replace("quiet", "busy"),
                           name="cats.yaml")
    if (state / "outputs" / "cats").exists():
        pytest.skip("a disk that does not tell case apart: the two names are one folder here")
    for command in ("plan", "run"):
        args = run_args(command, lower, state, *(sim.engine_args() if command == "run" else ()))
        result = run_cli(*args, cwd=tmp_path)
        assert result.code == 0, str(result)
    assert len(list((state / "outputs" / "cats").glob("*.mp4"))) == 3
    assert len(list((state / "outputs" / "Cats").glob("*.mp4"))) == 3


def test_a_manifest_whose_name_only_changed_case_runs_on(tmp_path: Path, provider: ProviderFactory) -> None:
    """The same file with its `name:` edited from Cats to cats is one batch, not two: no refusal."""
    sim = provider()
    state = tmp_path / "state"
    cats = write_manifest(tmp_path, THREE_JOBS.replace("name: trio", "name: Cats"), name="cats.yaml")
    assert run_cli(*run_args("run", cats, state, *sim.engine_args()), cwd=tmp_path).code == 0
    cats.write_text(THREE_JOBS.replace("name: trio", "name: cats"), encoding="utf-8")
    for command in ("plan", "run"):
        args = run_args(command, cats, state, *(sim.engine_args() if command == "run" else ()))
        result = run_cli(*args, cwd=tmp_path)
        assert result.code == 0, str(result)


def test_a_pair_kept_apart_by_a_case_sensitive_disk_runs_on(tmp_path: Path, provider: ProviderFactory) -> None:
    """`name: Cats` and `name: cats` planned into one ledger before the refusal each have their own folder on a
    case-sensitive disk (ext4): nothing mixes there. The refusal stopped
    both, the first too, with its paid tasks uncollected; renaming one (the fix it named) left the other refused by
    the renamed one's folder. A manifest whose own folder is a folder apart from its twin's goes on."""
    from runner.ledger import open_ledger
    from runner.manifest import expand, load_manifest
    from runner.service.manifest_files import MANIFEST_FILE_META

    sim = provider()
    state = tmp_path / "state"
    upper = write_manifest(tmp_path, THREE_JOBS.replace("name: trio", "name: Cats"), name="Cats.yaml")
    assert run_cli(*run_args("run", upper, state, *sim.engine_args()), cwd=tmp_path).code == 0
    lower = write_manifest(tmp_path, THREE_JOBS.replace("name: trio", "name: cats").replace("quiet", "busy"),
                           name="cats.yaml")
    (state / "outputs" / "cats").mkdir()
    if (state / "outputs" / "cats").samefile(state / "outputs" / "Cats"):
        pytest.skip("a case-insensitive disk: the two names are one folder here")
    loaded = load_manifest(lower)  # planned as a runner before the refusal did
    with open_ledger(state) as ledger:
        ledger.register(loaded.name, loaded.digest, list(expand(loaded)))
        ledger.set_meta(f"{MANIFEST_FILE_META}cats", str(lower.resolve()))
    for manifest in (upper, lower):
        for command in ("plan", "run"):
            args = run_args(command, manifest, state, *(sim.engine_args() if command == "run" else ()))
            result = run_cli(*args, cwd=tmp_path)
            assert result.code == 0, str(result)
    assert len(list((state / "outputs" / "cats").glob("*.mp4"))) == 3
    assert len(list((state / "outputs" / "Cats").glob("*.mp4"))) == 3
