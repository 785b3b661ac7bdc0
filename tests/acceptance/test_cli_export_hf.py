"""`runner export --format hf` as a user runs it (issue 12, item 3): an image-to-video batch over a
folder of local images, exported and loaded with the real `datasets`: every row, its conditioning
image copied beside the video (read from the manifest's folder), one train split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
from test_cli_models_inputs import animate, frames

from test_cli_support import ProviderFactory, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def test_an_image_to_video_export_loads_with_its_conditioning_images(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    frames(tmp_path / "test")  # a folder named like a split
    manifest = write_manifest(tmp_path, animate("test"), "animate.yaml")
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    dest = tmp_path / "hf"
    exported = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(dest),
                       cwd=tmp_path / "test")
    assert exported.code == 0, str(exported)
    loaded = datasets.load_dataset(str(dest), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["train"]
    ds = loaded["train"].cast_column("video", datasets.Video(decode=False))
    ds = ds.cast_column("image", datasets.Video(decode=False))
    assert ds.num_rows == 3
    for row in ds:
        source = tmp_path / str(row["image_source"])
        assert hashlib.sha256(Path(row["image"]["path"]).read_bytes()).hexdigest() == row["image_sha256"]
        assert source.read_bytes() == Path(row["image"]["path"]).read_bytes()
        assert row["text"] == "the camera slowly pushes in"


def test_an_export_into_a_folder_with_someone_elses_metadata_refuses_and_deletes_nothing(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """The repro: a metadata.jsonl runner did not write is not an earlier export; exit 2, files intact."""
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    frames(tmp_path / "test")
    manifest = write_manifest(tmp_path, animate("test"), "animate.yaml")
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    dest = tmp_path / "hf2"
    dest.mkdir()
    (dest / "my.mp4").write_text("mine\n")
    (dest / "metadata.jsonl").write_text('{"file_name":"my.mp4"}\n')
    result = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(dest),
                     cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "metadata.jsonl was not written by runner" in result.stderr and str(dest) in result.stderr
    assert (dest / "my.mp4").read_text() == "mine\n"
    assert (dest / "metadata.jsonl").read_text() == '{"file_name":"my.mp4"}\n'
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.jsonl", "my.mp4"]


def test_an_exported_clip_is_the_read_only_original(tmp_path: Path, provider: ProviderFactory) -> None:
    """The export hard-links the stored video (no second copy of a dataset on disk), so the stored file is
    read-only: an in-place edit of an exported clip (`cp other.mp4 dataset/cat.mp4` writes into the file) would
    otherwise change the paid original (operator sweep, 2026-12-04). Copy a clip before editing it."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    dest = tmp_path / "hf"
    assert run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(dest),
                   cwd=tmp_path).code == 0
    stored = sorted((state / "outputs" / "trio").glob("*.mp4"))
    assert len(stored) == 3
    for original in stored:
        exported = dest / original.name
        assert exported.stat().st_ino == original.stat().st_ino  # one file, two names
        assert original.stat().st_mode & 0o777 == 0o444, oct(original.stat().st_mode)


def test_an_export_or_report_into_the_state_directory_is_refused_and_nothing_is_lost(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """The review sweep's repro: an hf export into ``state/outputs/<manifest>`` was accepted ("3 hard-linked"); after a
    clip was rejected the next export removed "1 no longer exported", the paid original itself. A csv ``--to
    state/ledger.db`` would have emptied the ledger. Every ``--to`` inside the state directory is refused."""
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    frames(tmp_path / "test")
    manifest = write_manifest(tmp_path, animate("test"), "animate.yaml")
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    stored = {path: path.read_bytes() for path in (state / "outputs").rglob("*.mp4")}
    ledger = (state / "ledger.db").read_bytes()
    folder = next(iter(stored)).parent
    for args in (["export", "--format", "hf", "--to", str(folder)],
                 ["export", "--format", "hf", "--to", str(state / "datasets" / "v1")],
                 ["export", "--format", "csv", "--to", str(state / "ledger.db")],
                 ["export", "--to", "ledger.db"],  # relative to the folder it is run from
                 ["report", "--to", str(folder)]):
        result = run_cli(args[0], str(manifest), "--state", str(state), *args[1:],
                         cwd=state if args[-1] == "ledger.db" else tmp_path)
        assert result.code == 2 and "is in the state directory" in result.stderr, (args, str(result))
    assert {path: path.read_bytes() for path in (state / "outputs").rglob("*.mp4")} == stored
    assert (state / "ledger.db").read_bytes() == ledger and not (state / "datasets").exists()
    assert not (folder / "metadata.jsonl").exists() and not (folder / "index.html").exists()
