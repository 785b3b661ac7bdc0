"""The fetch lane and the local disk: one job's file problem never blocks the others, nothing is written
outside the state directory, and a file already in place from an interrupted run is adopted.

Each job's folder is checked before its POST too (tests/integration/test_engine_unstorable.py); the tests here
that plant a problem use :class:`CheckedAtDownloadOnly`, as if it appeared after that check: the download's own
check is what they prove."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.engine import StopReason
from runner.errors import LedgerError, RunnerError
from runner.jobs import JobSpec, JobState
from runner.storage.local import LocalStore

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


class CheckedAtDownloadOnly(LocalStore):
    """The state directory, as if every problem appeared after the check before the POST."""

    def probe(self, rel: str) -> None:
        pass

    def check_name(self, rel: str) -> None:
        pass


def renamed(job: JobSpec, output: str) -> JobSpec:
    return dataclasses.replace(job, output=output)


def done_keys(rig: Rig) -> set[str]:
    return {job.key for job in rig.ledger.iter_jobs("t", states=[JobState.DONE])}


async def test_name_too_long_for_the_temporary_file_blocks_only_its_own_job(rig_factory: Callable[..., Rig]) -> None:
    """A 250-byte output name (its temporary name is longer than 255) stays succeeded with a reason; the rest finish."""
    rig = rig_factory()
    rig.store = CheckedAtDownloadOnly(rig.state)
    first, *others = make_jobs(4)
    long_job = renamed(first, "n" * 246 + ".mp4")
    rig.plan([long_job, *others])
    result = await rig.run(concurrency=1, downloads=1)
    assert result.error is None and result.reason is StopReason.COMPLETE, result
    assert done_keys(rig) == {job.key for job in others}
    stuck = rig.ledger.get(long_job.key)
    assert stuck is not None and stuck.state is JobState.SUCCEEDED
    assert stuck.error and "name too long" in stuck.error.lower(), stuck.error
    assert any(a.outcome == "file_error" for a in rig.ledger.attempts(long_job.key))


async def test_path_past_path_max_is_a_per_job_error_not_a_traceback(rig_factory: Callable[..., Rig]) -> None:
    """A destination whose whole path passes PATH_MAX (dest.exists() raises) is recorded on its job only."""
    rig = rig_factory()
    rig.store = CheckedAtDownloadOnly(rig.state)
    first, *others = make_jobs(3)
    deep = "/".join(["d" * 200] * 25) + "/x.mp4"  # ~5000 bytes
    rig.plan([renamed(first, deep), *others])
    result = await rig.run(concurrency=1, downloads=1)
    assert result.error is None, result
    assert done_keys(rig) == {job.key for job in others}
    stuck = rig.ledger.get(first.key)
    assert stuck is not None and stuck.state is JobState.SUCCEEDED and stuck.error


async def test_symlinked_folder_inside_outputs_is_never_followed(rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    """A symlink planted in outputs/ pointing outside the state directory: nothing is written there."""
    rig = rig_factory()
    rig.store = CheckedAtDownloadOnly(rig.state)
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = rig.state / "outputs" / "t"
    folder.mkdir(parents=True)
    (folder / "evil").symlink_to(outside, target_is_directory=True)
    first, *others = make_jobs(3)
    rig.plan([renamed(first, "evil/x.mp4"), *others])
    result = await rig.run(concurrency=1, downloads=1)
    assert result.error is None, result
    assert list(outside.iterdir()) == [], "a download was written outside the state directory"
    assert done_keys(rig) == {job.key for job in others}
    stuck = rig.ledger.get(first.key)
    assert stuck is not None and stuck.state is JobState.SUCCEEDED
    assert stuck.error and "outside" in stuck.error, stuck.error


async def test_full_disk_still_stops_the_run(rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC is the whole disk, not one job: the run stops, the job stays succeeded."""
    import errno

    from runner.storage import local

    def full(*args: Any) -> bool:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local, "_place_new", full)
    rig = rig_factory()
    rig.plan(make_jobs(2))
    result = await rig.run(concurrency=1, downloads=1)
    assert result.reason is StopReason.FATAL and result.error is not None
    assert "space" in str(result.error)
    assert rig.counts()[JobState.DONE] == 0


async def test_kill_between_rename_and_record_adopts_the_file(rig_factory: Callable[..., Rig],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """The file was renamed into place but the run died before recording it: the next run adopts it, no copy."""
    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs)
    original = rig.ledger.mark_done

    def killed(*args: Any, **kwargs: Any) -> None:
        raise LedgerError("killed before the record (simulated)")

    rig.ledger.mark_done = killed  # type: ignore[method-assign]
    with pytest.raises(RunnerError):
        await rig.run()
    folder = rig.state / "outputs" / "t"
    assert [p.name for p in folder.iterdir()] == ["clip-0.mp4"]
    rig.ledger.mark_done = original  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING)
    await rig.run()
    job = rig.ledger.get(jobs[0].key)
    assert job is not None and job.state is JobState.DONE and job.path == "outputs/t/clip-0.mp4"
    assert sorted(p.name for p in folder.iterdir()) == ["clip-0.mp4"], "the same video stored twice"
    assert "already holds another video" not in caplog.text


async def test_other_video_in_place_is_kept_and_this_one_stored_beside(rig_factory: Callable[..., Rig],
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A different video already at the destination is never overwritten; the new one goes beside it, with a warning.
    (The file appears once the task is paid for: one there before the POST holds the job back, unsent — it may be
    this job's own video, when the ledger was restored from an older backup: test_engine_unstorable.py.)"""
    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs)
    folder = rig.state / "outputs" / "t"
    recorded = rig.ledger.mark_running

    def then_someone_else_s_file(*args: Any, **kwargs: Any) -> bool:
        moved = recorded(*args, **kwargs)
        (folder / "clip-0.mp4").write_bytes(b"\0\0\0\x18ftypsomeone else's video")
        return moved

    rig.ledger.mark_running = then_someone_else_s_file  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING)
    await rig.run()
    job = rig.ledger.get(jobs[0].key)
    assert job is not None and job.state is JobState.DONE
    assert job.path == f"outputs/t/clip-0.{jobs[0].key[:12]}.mp4"
    assert (folder / "clip-0.mp4").read_bytes().endswith(b"someone else's video")
    assert "already holds another video" in caplog.text


async def test_the_fetch_lane_writes_through_its_output_store(rig_factory: Callable[..., Rig]) -> None:
    """With an in-memory store the engine writes no file: every video, and the copy another manifest
    asks for, is in the store, with the sha256 and size the ledger records."""
    import hashlib

    from runner.engine import materialise_targets
    from runner.storage.memory import MemoryStore

    rig = rig_factory()
    store = rig.store = MemoryStore()
    jobs = make_jobs(2)
    rig.plan(jobs)
    rig.plan([renamed(job, f"again-{i}.mp4") for i, job in enumerate(jobs)], manifest="u")
    await rig.run()
    assert not (rig.state / "outputs").exists()
    for job in rig.ledger.iter_jobs("t"):
        assert job.state is JobState.DONE and job.path is not None
        data = store.files[job.path]
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (job.sha256, job.bytes)
    assert sorted(store.files) == ["outputs/t/clip-0.mp4", "outputs/t/clip-1.mp4",
                                   "outputs/u/again-0.mp4", "outputs/u/again-1.mp4"]
    del store.files["outputs/u/again-0.mp4"]
    assert materialise_targets(rig.ledger, "u", store) == 1
    assert store.files["outputs/u/again-0.mp4"] == store.files["outputs/t/clip-0.mp4"]
    assert not (rig.state / "outputs").exists()


async def test_the_gallery_and_the_hf_export_read_videos_from_the_output_store(
        rig_factory: Callable[..., Rig], tmp_path: Path) -> None:
    """Reporting never looks under the state directory: the videos come from the store it is given."""
    import json

    from runner.reporting.dataset import METADATA_FILE, export_hf
    from runner.reporting.gallery import write_gallery
    from runner.storage.memory import MemoryStore

    rig = rig_factory()
    store = rig.store = MemoryStore()
    rig.plan(make_jobs(2))
    await rig.run()
    gallery = write_gallery(rig.ledger, "t", tmp_path / "report", store=store)
    assert (gallery.videos, gallery.missing) == (2, [])
    assert (tmp_path / "report" / "videos" / "clip-0.mp4").read_bytes() == store.files["outputs/t/clip-0.mp4"]
    linked = write_gallery(rig.ledger, "t", tmp_path / "linked", store=store, copy_videos=False)
    assert 'src="memory://outputs/t/clip-0.mp4"' in linked.index.read_text()
    exported = export_hf(rig.ledger, "t", tmp_path / "hf", store)
    assert (exported.rows, exported.copied, exported.missing) == (2, 2, [])
    rows = [json.loads(line) for line in (tmp_path / "hf" / METADATA_FILE).read_text().splitlines()]
    assert {row["file_name"] for row in rows} == {"clip-0.mp4", "clip-1.mp4"}
    gone = next(job.key for job in rig.ledger.iter_jobs("t") if job.path == "outputs/t/clip-1.mp4")
    del store.files["outputs/t/clip-1.mp4"]
    assert export_hf(rig.ledger, "t", tmp_path / "hf2", store).missing == [gone]
    assert write_gallery(rig.ledger, "t", tmp_path / "report2", store=store).missing == [gone]


async def test_the_fetch_lane_checks_results_by_the_jobs_endpoint(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint's media check judges each download: a result it refuses is never stored as done."""
    from runner.engine import fetch

    real_get = fetch.endpoints.get

    @dataclasses.dataclass(frozen=True)
    class Picky:
        inner: Any

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def check_media(self, head: bytes) -> str | None:
            return "not the format this endpoint promises"

    monkeypatch.setattr(fetch.endpoints, "get", lambda slug: Picky(real_get(slug)))
    rig = rig_factory()
    rig.plan(make_jobs(2))
    await rig.run(concurrency=2, downloads=1, max_fetch_tries=1)  # one try per run: no backoff to wait out
    assert done_keys(rig) == set()
    for job in rig.ledger.iter_jobs("t"):
        assert job.state is JobState.SUCCEEDED
        assert any("not the format this endpoint promises" in (a.detail or "") for a in rig.ledger.attempts(job.key))
