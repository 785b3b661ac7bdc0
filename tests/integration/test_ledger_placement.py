"""Stored files renamed to match an edited manifest: cycles, files in the way, a kill midway (issue 9, item 24)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.jobs import JobSpec
from runner.ledger import SqliteLedger, open_ledger, realign_outputs
from runner.storage.memory import MemoryStore

MODEL = "kling-v3.0-pro-t2v"


def spec(i: int, output: str) -> JobSpec:
    return JobSpec.build(model=MODEL, request={"prompt": f"clip {i}", "duration": 5}, vars={"i": i}, repeat=1,
                         output=output, estimated_usd=0.56)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with open_ledger(tmp_path / "state") as opened:
        yield opened


def store(ledger: SqliteLedger, job: JobSpec, rel: str) -> bytes:
    """Take ``job`` to done with a file of its own at ``rel``; returns the file's bytes."""
    data = f"video of {job.key}".encode()
    file = ledger.state_dir / rel
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    attempt = ledger.mark_submitting(job.key)
    ledger.mark_running(job.key, attempt, task_id=f"t-{job.key}", http_status=200)
    ledger.mark_succeeded(job.key, video_url="u", url_expires_at=None, debug={})
    ledger.mark_done(job.key, path=rel, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    return data


def test_a_cycle_of_three_names_is_renamed(ledger: SqliteLedger) -> None:
    """a→b, b→c, c→a: every file ends at its job's new name, and the ledger records it."""
    names = ["a.mp4", "b.mp4", "c.mp4"]
    jobs = [spec(i, name) for i, name in enumerate(names)]
    ledger.register("m", "d1", jobs)
    data = [store(ledger, job, f"outputs/m/{job.output}") for job in jobs]
    ledger.register("m", "d2", [spec(i, names[(i + 1) % 3]) for i in range(3)])
    done = realign_outputs(ledger, "m")
    assert (done.renamed, done.blocked) == (3, [])
    for i, job in enumerate(jobs):
        rel = f"outputs/m/{names[(i + 1) % 3]}"
        assert (ledger.state_dir / rel).read_bytes() == data[i]
        record = ledger.get(job.key)
        assert record is not None and record.path == rel
    assert sorted(os.listdir(ledger.state_dir / "outputs" / "m")) == names


def test_a_dropped_jobs_video_in_the_way_is_moved_aside_not_overwritten(ledger: SqliteLedger) -> None:
    """The new name belongs to the stored video of a job the manifest dropped: it goes to _orphans first."""
    old, kept = spec(0, "a.mp4"), spec(1, "b.mp4")
    ledger.register("m", "d1", [old, kept])
    old_data = store(ledger, old, "outputs/m/a.mp4")
    kept_data = store(ledger, kept, "outputs/m/b.mp4")
    ledger.register("m", "d2", [spec(1, "a.mp4")])  # `old` dropped, `kept` now wants a.mp4
    done = realign_outputs(ledger, "m")
    assert (done.renamed, done.moved_aside, done.blocked) == (1, 1, [])
    assert (ledger.state_dir / "outputs/m/a.mp4").read_bytes() == kept_data
    aside = f"outputs/m/_orphans/{old.key}.mp4"
    assert (ledger.state_dir / aside).read_bytes() == old_data
    record = ledger.get(old.key)
    assert record is not None and record.path == aside


def test_a_rename_cut_short_is_finished_by_the_next_planning(ledger: SqliteLedger) -> None:
    """Killed between a rename and its record: the journal finds the file and records where it is."""
    job = spec(0, "a.mp4")
    ledger.register("m", "d1", [job])
    data = store(ledger, job, "outputs/m/a.mp4")
    ledger.register("m", "d2", [spec(0, "z.mp4")])
    # What realign_outputs does, stopped after the rename: the journal entry, then the rename itself.
    tmp = f"outputs/m/.renaming-{job.key}.mp4"
    ledger.journal_renames([(job.key, "outputs/m/a.mp4", tmp)])
    os.rename(ledger.state_dir / "outputs/m/a.mp4", ledger.state_dir / tmp)
    done = realign_outputs(ledger, "m")
    assert done.renamed == 1 and done.blocked == []
    assert (ledger.state_dir / "outputs/m/z.mp4").read_bytes() == data
    record = ledger.get(job.key)
    assert record is not None and record.path == "outputs/m/z.mp4"
    assert ledger.journaled_renames() == []


def test_links_to_another_manifests_videos_follow_a_swap(ledger: SqliteLedger) -> None:
    """Manifest n links the videos manifest m paid for; when n swaps their names, the stale links go and
    are made again at the right names."""
    from runner.engine import materialise_targets

    x, y = spec(0, "x.mp4"), spec(1, "y.mp4")
    ledger.register("m", "d1", [x, y])
    data = {x.key: store(ledger, x, "outputs/m/x.mp4"), y.key: store(ledger, y, "outputs/m/y.mp4")}
    ledger.register("n", "d1", [x, y])
    assert materialise_targets(ledger, "n") == 2
    ledger.register("n", "d2", [spec(0, "y.mp4"), spec(1, "x.mp4")])
    done = realign_outputs(ledger, "n")
    assert done.duplicates_removed == 2 and done.blocked == []
    materialise_targets(ledger, "n")
    assert (ledger.state_dir / "outputs/n/y.mp4").read_bytes() == data[x.key]
    assert (ledger.state_dir / "outputs/n/x.mp4").read_bytes() == data[y.key]
    assert (ledger.state_dir / "outputs/m/x.mp4").read_bytes() == data[x.key]  # m's own files untouched


def test_renames_go_through_the_output_store_not_paths(tmp_path: Path) -> None:
    """Issue 10 item 3: placement asks the store; with a memory ledger and a memory store no file is touched,
    and a rename cut short (journaled, moved, not recorded) is still finished from the journal."""
    from runner.ledger import MemoryLedger
    from runner.storage.memory import MemoryStore

    ledger, files = MemoryLedger(state_dir=tmp_path / "nowhere"), MemoryStore()
    names = ["a.mp4", "b.mp4", "c.mp4"]
    jobs = [spec(i, name) for i, name in enumerate(names)]
    ledger.register("m", "d1", jobs)
    data = {}
    for job in jobs:
        rel = f"outputs/m/{job.output}"
        data[job.key] = f"video of {job.key}".encode()
        with files.open_sink(rel) as sink:
            sink.write(data[job.key])
            stored = sink.commit()
        attempt = ledger.mark_submitting(job.key)
        assert attempt is not None
        ledger.mark_running(job.key, attempt, task_id=f"t-{job.key}", http_status=200)
        ledger.mark_succeeded(job.key, video_url="u", url_expires_at=None, debug={})
        ledger.mark_done(job.key, path=rel, sha256=stored.sha256, bytes=stored.bytes)
    ledger.register("m", "d2", [spec(i, names[(i + 1) % 3]) for i in range(3)])
    cut = jobs[0]
    tmp = f"outputs/m/.renaming-{cut.key}.mp4"
    ledger.journal_renames([(cut.key, "outputs/m/a.mp4", tmp)])
    files.move("outputs/m/a.mp4", tmp)
    done = realign_outputs(ledger, "m", store=files)
    assert (done.renamed, done.blocked) == (3, [])
    for i, job in enumerate(jobs):
        rel = f"outputs/m/{names[(i + 1) % 3]}"
        assert files.files[rel] == data[job.key]
        record = ledger.get(job.key)
        assert record is not None and record.path == rel
    assert sorted(files.files) == [f"outputs/m/{name}" for name in names]
    assert ledger.journaled_renames() == [] and not (tmp_path / "nowhere").exists()


def test_a_dangling_link_at_the_new_name_is_never_replaced(ledger: SqliteLedger) -> None:
    """Something at the name, even a link to nothing, keeps the job at its old name."""
    job = spec(0, "a.mp4")
    ledger.register("m", "d1", [job])
    data = store(ledger, job, "outputs/m/a.mp4")
    (ledger.state_dir / "outputs/m/z.mp4").symlink_to("nowhere.mp4")
    ledger.register("m", "d2", [spec(0, "z.mp4")])
    done = realign_outputs(ledger, "m")
    assert done.renamed == 0 and len(done.blocked) == 1
    assert (ledger.state_dir / "outputs/m/a.mp4").read_bytes() == data
    assert os.path.islink(ledger.state_dir / "outputs/m/z.mp4")
    record = ledger.get(job.key)
    assert record is not None and record.path == "outputs/m/a.mp4"


class _CaseInsensitiveStore(MemoryStore):
    """A store on a case-insensitive file system (APFS by default, vfat, exFAT, NTFS): ``Clips/a.mp4`` and
    ``clips/a.mp4`` name one file."""

    def _name(self, rel: str) -> str:
        return super()._name(rel).casefold()


def test_an_edit_of_only_the_case_of_a_name_keeps_the_video_on_a_case_insensitive_file_system(
    ledger: SqliteLedger,
) -> None:
    """``Clips/{v}`` edited to ``clips/{v}`` on macOS: the new name is the stored video itself, which was read as
    a copy of the video the ledger records at its old name, and removed (the only copy of a paid video). Now the
    rename goes through its temporary name like any other, and the file takes the new case."""
    job = spec(0, "Clips/a.mp4")
    ledger.register("m", "d1", [job])
    data = b"the only copy of a paid video"
    files = _CaseInsensitiveStore()
    files.files[files._name("outputs/m/Clips/a.mp4")] = data
    attempt = ledger.mark_submitting(job.key)
    ledger.mark_running(job.key, attempt, task_id="t-0", http_status=200)
    ledger.mark_succeeded(job.key, video_url="u", url_expires_at=None, debug={})
    ledger.mark_done(job.key, path="outputs/m/Clips/a.mp4", sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    ledger.register("m", "d2", [spec(0, "clips/a.mp4")])
    done = realign_outputs(ledger, "m", store=files)
    assert (done.renamed, done.duplicates_removed, done.blocked) == (1, 0, [])
    assert list(files.files.values()) == [data]
    record = ledger.get(job.key)
    assert record is not None and record.path == "outputs/m/clips/a.mp4"


def test_a_new_name_another_video_holds_in_another_case_never_removes_that_video(ledger: SqliteLedger) -> None:
    """On a case-insensitive file system a job's new name ``x.mp4`` is the stored video of a dropped job at
    ``X.mp4``: it was read as a copy of that very video (recorded at ``X.mp4``) and removed, a paid video lost.
    Now it is kept and the rename waits, said."""
    kept, dropped = spec(0, "a.mp4"), spec(1, "X.mp4")
    ledger.register("m", "d1", [kept, dropped])
    files = _CaseInsensitiveStore()
    for job, rel in ((kept, "outputs/m/a.mp4"), (dropped, "outputs/m/X.mp4")):
        data = f"video of {job.key}".encode()
        files.files[files._name(rel)] = data
        attempt = ledger.mark_submitting(job.key)
        ledger.mark_running(job.key, attempt, task_id=f"t-{job.key}", http_status=200)
        ledger.mark_succeeded(job.key, video_url="u", url_expires_at=None, debug={})
        ledger.mark_done(job.key, path=rel, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    ledger.register("m", "d2", [spec(0, "x.mp4")])
    done = realign_outputs(ledger, "m", store=files)
    assert done.duplicates_removed == 0 and len(done.blocked) == 1, done
    assert files.exists("outputs/m/X.mp4") and files.digest("outputs/m/X.mp4") == hashlib.sha256(
        f"video of {dropped.key}".encode()).hexdigest()
    assert files.exists("outputs/m/a.mp4")
