"""The folders an export or a report writes into: an hf export syncs every folder entry of the files it lists
before ``metadata.jsonl`` takes its name (a power cut never leaves a metadata file naming videos whose folder
entries are gone); a report writes nothing through a folder linked out of its own."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest

from runner import endpoints
from runner.errors import UsageError
from runner.jobs import JobSpec
from runner.ledger import SqliteLedger, open_ledger
from runner.reporting.dataset import METADATA_FILE, export_hf
from runner.reporting.gallery import write_gallery
from runner.simulator.media import Video

OUTPUTS = ["top.mp4", "Tokyo/dawn.mp4", "Paris/night/rain.mp4"]


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    """Three done jobs: one at the top, one in a folder, one two folders down."""
    made = open_ledger(tmp_path / "state")
    jobs = [JobSpec.build(model="kling-v3.0-pro-t2v", request=endpoints.get("kling-v3.0-pro-t2v").request_body(
        {"prompt": output}), vars={"n": n}, repeat=1, output=output, estimated_usd=0.5)
        for n, output in enumerate(OUTPUTS)]
    made.register("m", "digest", jobs)
    for job in jobs:
        video = Video(job.key).read()
        path = f"outputs/m/{job.output}"
        (made.state_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (made.state_dir / path).write_bytes(video)
        attempt = made.mark_submitting(job.key)
        assert attempt is not None
        assert made.mark_running(job.key, attempt, task_id=f"t-{job.key}", http_status=200)
        assert made.mark_succeeded(job.key, video_url="https://x/v.mp4", url_expires_at=None, debug={})
        assert made.mark_done(job.key, path=path, sha256=hashlib.sha256(video).hexdigest(), bytes=len(video))
    return made


def _recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every fsync (by the path its descriptor names) and every rename (by its new name), in order."""
    steps: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        steps.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        steps.append(("rename", os.path.realpath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return steps


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names a descriptor's file by /proc")
def test_every_folder_of_an_exported_file_is_synced_before_the_metadata_takes_its_name(
    ledger: SqliteLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The videos were linked into DIR/Tokyo/ and DIR/Paris/night/ and metadata.jsonl fsynced and renamed, but no
    folder was synced: after a power cut the metadata could list files whose folder entries (or folders) were
    never on the disk, a dataset that fails to load. Now each such folder, then DIR, is synced before."""
    dest = tmp_path / "dataset"
    steps = _recorded(monkeypatch)
    result = export_hf(ledger, "m", dest)
    assert result.rows == len(OUTPUTS)
    real = os.path.realpath(dest)
    metadata = steps.index(("rename", os.path.join(real, METADATA_FILE)))
    for folder in ("Paris/night", "Paris", "Tokyo", "."):
        where = os.path.normpath(os.path.join(real, folder))
        synced = [n for n, step in enumerate(steps) if step == ("fsync", where)]
        assert synced and synced[0] < metadata, (folder, steps)
    deep, up = (steps.index(("fsync", os.path.join(real, f))) for f in ("Paris/night", "Paris"))
    assert deep < up  # a folder's entry in its parent is synced after what it holds
    assert ("fsync", real) in steps[metadata:]  # and metadata.jsonl's own entry after its rename


def test_a_file_system_that_refuses_a_folders_sync_still_exports(
    ledger: SqliteLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Some SMB and FUSE mounts refuse a folder's fsync (EINVAL): nothing more can be done there, and the export
    is written all the same; a file's own fsync still goes through."""
    real_fsync = os.fsync
    refused: list[int] = []

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            refused.append(fd)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    result = export_hf(ledger, "m", tmp_path / "dataset")
    assert result.rows == len(OUTPUTS) and refused
    assert (tmp_path / "dataset" / METADATA_FILE).read_text(encoding="utf-8").count("\n") == len(OUTPUTS)


def test_a_report_writes_nothing_through_a_folder_of_an_output_name_linked_out_of_it(
    ledger: SqliteLedger, tmp_path: Path,
) -> None:
    """DIR/videos/Paris a link to a folder of the user's: the report made its folders through it and wrote the video
    there. Now refused (exit 2) naming the link, and the user's folder is left as it was."""
    mine = tmp_path / "mine"
    (mine / "night").mkdir(parents=True)
    dest = tmp_path / "report"
    (dest / "videos").mkdir(parents=True)
    (dest / "videos" / "Paris").symlink_to(mine, target_is_directory=True)
    with pytest.raises(UsageError, match=f"{dest / 'videos' / 'Paris'} is a link to {mine}, outside the report"):
        write_gallery(ledger, "m", dest)
    assert [path.name for path in mine.rglob("*")] == ["night"]


def test_a_report_written_again_removes_nothing_through_a_folder_linked_out_of_it(
    ledger: SqliteLedger, tmp_path: Path,
) -> None:
    """A video the last report wrote under DIR/videos/Paris/ and this one no longer shows (rejected since): its
    folder since moved out and linked back (to a folder of the user's holding that very file), the report removed
    the user's file through the link. Now only files inside the report folder are removed."""
    dest = tmp_path / "report"
    write_gallery(ledger, "m", dest)
    rain = dest / "videos" / "Paris" / "night" / "rain.mp4"
    data = rain.read_bytes()
    mine = tmp_path / "mine"
    (dest / "videos" / "Paris").rename(mine)
    (dest / "videos" / "Paris").symlink_to(mine, target_is_directory=True)
    key = ledger.key_at_path("outputs/m/Paris/night/rain.mp4")
    assert key is not None and ledger.reject(key, reason="not this one")
    write_gallery(ledger, "m", dest)
    assert (mine / "night" / "rain.mp4").read_bytes() == data


def test_an_hf_export_writes_nothing_through_a_folder_of_an_output_name_linked_out_of_it(
    ledger: SqliteLedger, tmp_path: Path,
) -> None:
    """DATASET/Paris a link to a folder of the user's: the hf export made its folders through it and wrote the video
    there (and a re-export would remove there what it no longer lists). Now refused (exit 2) before anything is
    written, naming the link: the user's folder and the dataset folder are left as they were."""
    mine = tmp_path / "mine"
    (mine / "night").mkdir(parents=True)
    dest = tmp_path / "dataset"
    dest.mkdir()
    (dest / "Paris").symlink_to(mine, target_is_directory=True)
    with pytest.raises(UsageError, match=f"{dest / 'Paris'} is a link to {mine}, outside the hf export folder"):
        export_hf(ledger, "m", dest)
    assert [path.name for path in mine.rglob("*")] == ["night"]
    assert sorted(path.name for path in dest.iterdir()) == ["Paris"]


def test_an_hf_export_writes_through_a_folder_linked_within_it(ledger: SqliteLedger, tmp_path: Path) -> None:
    """A link to a folder inside the dataset folder leads nowhere else: the export goes on through it."""
    dest = tmp_path / "dataset"
    (dest / "paris-2026").mkdir(parents=True)
    (dest / "Paris").symlink_to(dest / "paris-2026", target_is_directory=True)
    assert export_hf(ledger, "m", dest).rows == len(OUTPUTS)
    assert (dest / "paris-2026" / "night" / "rain.mp4").is_file()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names a descriptor's file by /proc")
def test_every_folder_of_a_reports_videos_is_synced_before_its_page_takes_its_name(
    ledger: SqliteLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The report's page, fsynced and renamed, links videos placed in DIR/videos/… whose folders were never synced:
    after a power cut it could show videos that are not there. Now each such folder is synced before the page."""
    dest = tmp_path / "report"
    steps = _recorded(monkeypatch)
    write_gallery(ledger, "m", dest)
    real = os.path.realpath(dest)
    page = steps.index(("rename", os.path.join(real, "index.html")))
    for folder in ("videos/Paris/night", "videos/Paris", "videos/Tokyo", "videos", "."):
        where = os.path.normpath(os.path.join(real, folder))
        synced = [n for n, step in enumerate(steps) if step == ("fsync", where)]
        assert synced and synced[0] < page, (folder, steps)
