"""The Hugging Face export loads as promised (issue 12, item 3), checked with the real ``datasets``.

``datasets.load_dataset(DIR)`` must give one ``train`` split holding every exported row with its
metadata, whatever words the output folders hold ("train", "test", "dev kit", "validation", "a
steam train" once made it infer splits and drop rows); a uniform ``text`` column for single- and
multi-shot jobs; no variable column duplicating another; the conditioning image of an
image-to-video job loading as a file column; a re-export removing the files of jobs it no
longer exports (and nothing else).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import datasets
import pytest

from runner import endpoints
from runner.errors import UsageError
from runner.jobs import JobSpec
from runner.ledger import SqliteLedger, open_ledger
from runner.reporting.dataset import CARD_FILE, METADATA_FILE, export_hf
from runner.simulator.media import Video
from runner.storage.local import LocalStore
from runner.testing import make_png

FOLDERS = ["train", "test", "dev kit", "validation", "a steam train", "crash test dummy"]


def _job(slug: str, fields: dict[str, Any], output: str, **variables: Any) -> JobSpec:
    request = endpoints.get(slug).request_body(fields)
    return JobSpec.build(model=slug, request=request, vars=variables, repeat=1, output=output, estimated_usd=0.56)


def _finish(ledger: SqliteLedger, jobs: list[JobSpec]) -> None:
    for job in jobs:
        video = Video(job.key).read()
        path = f"outputs/m/{job.output}"
        (ledger.state_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (ledger.state_dir / path).write_bytes(video)
        attempt = ledger.mark_submitting(job.key)
        assert attempt is not None
        assert ledger.mark_running(job.key, attempt, task_id=f"t-{job.key}", http_status=200)
        assert ledger.mark_succeeded(job.key, video_url="https://x/v.mp4", url_expires_at=None, debug={})
        assert ledger.mark_done(job.key, path=path, sha256=hashlib.sha256(video).hexdigest(), bytes=len(video))


@pytest.fixture
def exported(tmp_path: Path) -> tuple[SqliteLedger, list[JobSpec], Path, bytes]:
    """Done jobs under split-word folders, one multi-shot, one image-to-video with a local image."""
    root = tmp_path / "project"
    png = make_png(640, 360, seed=3)
    (root / "frames").mkdir(parents=True)
    (root / "frames" / "harbour.png").write_bytes(png)
    image = {"file": "frames/harbour.png", "sha256": hashlib.sha256(png).hexdigest(), "size": len(png),
             "kind": "image", "mime": "image/png"}
    jobs = [_job("kling-v3.0-pro-t2v", {"prompt": f"{folder}, at dawn"}, f"{folder}/clip.mp4",
                 subject=folder, model="kling-v3.0-pro-t2v")
            for folder in FOLDERS]
    shots = [{"prompt": "a steam train leaves", "duration": 2}, {"prompt": "it crosses a bridge", "duration": 3}]
    jobs.append(_job("kling-v3.0-pro-t2v", {"multi_prompt": shots}, "multi.mp4", subject=7,
                     model="kling-v3.0-pro-t2v"))
    jobs.append(_job("kling-v3.0-std-i2v", {"image": image, "prompt": "the harbour wakes"}, "test/harbour.mp4",
                     subject="harbour", model="kling-v3.0-std-i2v"))
    ledger = open_ledger(tmp_path / "state")
    ledger.register("m", "digest", jobs)
    _finish(ledger, jobs)
    dest = tmp_path / "hf"
    result = export_hf(ledger, "m", dest, LocalStore(ledger.state_dir), inputs_root=root)
    assert result.rows == len(jobs)
    return ledger, jobs, dest, png


def _load(dest: Path, cache: Path) -> datasets.Dataset:
    loaded = datasets.load_dataset(str(dest), cache_dir=str(cache))
    assert isinstance(loaded, datasets.DatasetDict)
    assert list(loaded) == ["train"], "one split, whatever words the folders hold"
    return loaded["train"]


def test_load_dataset_gives_every_row_with_its_metadata(
    exported: tuple[SqliteLedger, list[JobSpec], Path, bytes], tmp_path: Path
) -> None:
    _, jobs, dest, png = exported
    ds = _load(dest, tmp_path / "cache")
    assert ds.num_rows == len(jobs)
    assert {"video", "key", "model", "text", "subject", "prompt", "sha256", "image"} <= set(ds.column_names)
    assert not [name for name in ds.column_names if name.startswith("var_")], "no duplicated variable column"
    ds = ds.cast_column("video", datasets.Video(decode=False)).cast_column("image", datasets.Video(decode=False))
    by_key = {row["key"]: row for row in ds}
    assert set(by_key) == {job.key for job in jobs}
    for job in jobs:
        row = by_key[job.key]
        data = Path(row["video"]["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], job.output
        assert row["model"] == job.model
    single = by_key[jobs[1].key]
    assert single["text"] == "test, at dawn" and single["subject"] == "test"
    multi = by_key[jobs[-2].key]
    assert multi["text"] == "a steam train leaves\nit crosses a bridge" and multi["subject"] == "7"
    i2v = by_key[jobs[-1].key]
    assert Path(i2v["image"]["path"]).read_bytes() == png, "the conditioning image loads as a file column"
    assert i2v["image_source"] == "frames/harbour.png"
    assert by_key[jobs[0].key]["image"] is None


def test_the_card_names_its_data_files_and_how_to_upload(
    exported: tuple[SqliteLedger, list[JobSpec], Path, bytes]
) -> None:
    _, _, dest, _ = exported
    card = (dest / CARD_FILE).read_text(encoding="utf-8")
    assert card.startswith("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n")
    assert "metadata.jsonl" in card
    # the command it says to upload with is one the installed huggingface_hub has: since its 1.0 that is `hf`, and
    # `huggingface-cli` is gone (the README walk, 2026-12-05: no such command in the project's own .venv)
    upload = re.search(r"Upload as it is: `(\S+) upload USER/NAME path/to/this/folder --repo-type dataset`", card)
    assert upload is not None, card
    assert (Path(sys.executable).parent / upload.group(1)).is_file(), upload.group(1)


def test_a_re_export_removes_the_files_of_jobs_no_longer_exported(
    exported: tuple[SqliteLedger, list[JobSpec], Path, bytes], tmp_path: Path
) -> None:
    ledger, jobs, dest, _ = exported
    (dest / "notes.txt").write_text("mine")
    kept = jobs[:2]
    ledger.register("m", "digest-2", kept)
    result = export_hf(ledger, "m", dest, LocalStore(ledger.state_dir), inputs_root=tmp_path / "project")
    assert result.rows == 2 and result.removed == len(jobs) - 2 + 1  # the videos and the copied image
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == sorted([CARD_FILE, METADATA_FILE, "notes.txt", "test/clip.mp4", "train/clip.mp4"])
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["test", "train"], "emptied folders go too"
    rows = [json.loads(line) for line in (dest / METADATA_FILE).read_text().splitlines()]
    assert [row["key"] for row in rows] == [job.key for job in kept]
    assert _load(dest, tmp_path / "cache").num_rows == 2


def test_the_export_never_overwrites_a_readme_it_did_not_write(
    exported: tuple[SqliteLedger, list[JobSpec], Path, bytes], tmp_path: Path
) -> None:
    ledger, _, _, _ = exported
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / CARD_FILE).write_text("# my notes\n")
    with pytest.raises(UsageError, match=r"README\.md was not written by runner"):
        export_hf(ledger, "m", dest, LocalStore(ledger.state_dir))
    assert (dest / CARD_FILE).read_text() == "# my notes\n" and not (dest / METADATA_FILE).exists()


def test_the_export_never_takes_a_metadata_jsonl_it_did_not_write_for_its_own(
    exported: tuple[SqliteLedger, list[JobSpec], Path, bytes], tmp_path: Path
) -> None:
    """A folder with someone else's metadata.jsonl (no runner card beside it) is refused untouched:
    a re-export would overwrite it and delete the files it lists as "no longer exported"."""
    ledger, _, _, _ = exported
    dest = tmp_path / "theirs"
    dest.mkdir()
    (dest / "my.mp4").write_text("mine\n")
    (dest / METADATA_FILE).write_text('{"file_name": "my.mp4"}\n')
    with pytest.raises(UsageError, match=rf"{METADATA_FILE} was not written by runner.*empty folder"):
        export_hf(ledger, "m", dest, LocalStore(ledger.state_dir))
    assert (dest / "my.mp4").read_text() == "mine\n"
    assert (dest / METADATA_FILE).read_text() == '{"file_name": "my.mp4"}\n'
    assert sorted(p.name for p in dest.iterdir()) == [METADATA_FILE, "my.mp4"], "nothing written"


def test_a_re_export_keeps_a_listed_file_the_user_replaced(
    exported: tuple[SqliteLedger, list[JobSpec], Path, bytes], tmp_path: Path
) -> None:
    """Only a file still holding what the export wrote (its row's sha256) is removed."""
    ledger, jobs, dest, _ = exported
    replaced = dest / jobs[2].output
    replaced.unlink()  # hard-linked to the state dir: replace the file, do not write through the link
    replaced.write_text("my own edit\n")
    ledger.register("m", "digest-2", jobs[:2])
    result = export_hf(ledger, "m", dest, LocalStore(ledger.state_dir), inputs_root=tmp_path / "project")
    assert replaced.read_text() == "my own edit\n"
    assert result.changed == [jobs[2].output]
    assert result.removed == len(jobs) - 2 - 1 + 1  # the others and the copied image
    assert not (dest / jobs[3].output).exists()


def test_the_export_never_overwrites_a_file_it_did_not_write(
    exported: tuple[SqliteLedger, list[JobSpec], Path, bytes], tmp_path: Path
) -> None:
    """A file at an output name that no runner export listed is refused unless it already holds the video."""
    ledger, jobs, _, _ = exported
    dest = tmp_path / "mine"
    (dest / "train").mkdir(parents=True)
    (dest / jobs[0].output).write_text("mine\n")
    with pytest.raises(UsageError, match=r"train/clip\.mp4 was not written by runner"):
        export_hf(ledger, "m", dest, LocalStore(ledger.state_dir))
    assert (dest / jobs[0].output).read_text() == "mine\n" and not (dest / METADATA_FILE).exists()
    (dest / jobs[0].output).write_bytes(Video(jobs[0].key).read())  # the very video: nothing is lost
    assert export_hf(ledger, "m", dest, LocalStore(ledger.state_dir)).rows == len(jobs)
