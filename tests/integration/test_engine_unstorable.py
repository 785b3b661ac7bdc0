"""A job whose video could not be stored is never paid for: its folder is checked before its POST (operator
probe, 2026-12-04: with ``state/outputs`` linked to another disk a run paid for the whole batch, then could
store none of it). Its job stays pending, the jobs of other folders go on, and the run ends with a
:class:`~runner.errors.DiskError` (exit 6); the next run, once the folder is fixed, sends the rest. A full or
read-only disk stops the submits at once."""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from runner.engine import Engine, StopReason
from runner.engine import events as ev
from runner.engine.fetch import FetchLane
from runner.errors import DiskError
from runner.jobs import JobSpec, JobState
from runner.storage import Room
from runner.storage.local import LocalStore
from runner.storage.room import DISK_RESERVE, video_bytes

from engine_rig import MODEL, Rig, engine_config, guard, loop_wall

pytestmark = pytest.mark.anyio


def _jobs(folders: list[str]) -> list[JobSpec]:
    """One job a folder, in this order (planning order is submit order)."""
    return [JobSpec.build(model=MODEL, request={"prompt": f"clip {i}", "duration": 5, "cfg_scale": 0.5,
                                                "aspect_ratio": "16:9", "sound": False},
                          vars={"i": i}, repeat=1, output=f"{folder}/clip-{i}.mp4", estimated_usd=0.56)
            for i, folder in enumerate(folders)]


async def test_the_jobs_of_a_folder_that_takes_no_file_are_not_sent_and_the_others_are(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory()
    rig.plan(_jobs(["a", "a", "b", "c", "b"]))
    outputs = rig.state / "outputs" / "t"
    outputs.mkdir(parents=True)
    (outputs / "b").write_text("a file where the folder b should be")
    with guard(30):
        result = await rig.engine(concurrency=1).run()
    assert result.reason is StopReason.COMPLETE
    assert isinstance(result.error, DiskError) and "outputs/t/b/clip-2.mp4" in str(result.error), result.error
    assert "2 job(s) were not sent" in str(result.error)
    assert rig.sim.stats()["accepted_total"] == 3  # folders a and c; nothing for b
    counts = rig.counts()
    assert counts[JobState.DONE] == 3 and counts[JobState.PENDING] == 2, counts
    assert sorted(p.name for p in (outputs / "a").iterdir()) == ["clip-0.mp4", "clip-1.mp4"]  # no probe left

    (outputs / "b").unlink()
    with guard(30):
        again = await rig.engine(concurrency=2).run()
    assert again.reason is StopReason.COMPLETE and again.error is None
    assert rig.sim.stats()["accepted_total"] == 5 and rig.counts()[JobState.DONE] == 5


async def test_a_group_of_submits_leaves_out_the_job_that_cannot_be_stored(rig_factory: Callable[..., Rig]) -> None:
    """Several slots free at once: the group is sent without the job whose folder leads outside."""
    rig = rig_factory()
    rig.plan(_jobs(["a", "a", "b", "a", "a"]))
    outputs = rig.state / "outputs" / "t"
    outputs.mkdir(parents=True)
    (outputs / "b").symlink_to(tmp_outside := rig.state.parent / "elsewhere", target_is_directory=True)
    tmp_outside.mkdir()
    with guard(30):
        result = await rig.engine(concurrency=5).run()
    assert isinstance(result.error, DiskError) and "leads outside the state directory" in str(result.error)
    assert rig.sim.stats()["accepted_total"] == 4
    assert rig.counts()[JobState.DONE] == 4 and list(tmp_outside.iterdir()) == []


async def test_a_read_only_disk_stops_the_submits(rig_factory: Callable[..., Rig],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """EROFS (or a full disk) is no folder's own problem: no job after it is sent, what was paid is collected."""
    rig = rig_factory()
    rig.plan(_jobs(["a", "b", "c"]))
    store = LocalStore(rig.state)
    real_probe = store.probe

    def probe(rel: str) -> None:
        if "/b/" in rel:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(rig.state / rel))
        real_probe(rel)

    monkeypatch.setattr(store, "probe", probe)
    rig.store = store
    with guard(30):
        result = await rig.engine(concurrency=1).run()
    assert result.reason is StopReason.UNSTORABLE
    assert isinstance(result.error, DiskError) and "Read-only file system" in str(result.error)
    assert rig.sim.stats()["accepted_total"] == 1 and rig.counts()[JobState.DONE] == 1  # a's; neither b nor c


@pytest.mark.parametrize("output", ["a/" + "n" * 246 + ".mp4", "/".join(["d" * 200] * 25) + "/x.mp4"],
                         ids=["temporary-name-too-long", "past-PATH_MAX"])
async def test_a_name_the_disk_refuses_keeps_only_its_own_job_unsent(rig_factory: Callable[..., Rig], output: str) -> None:
    """A name too long (which `plan` refuses; a ledger written by hand can hold one) is that job's problem alone:
    not its folder's, whose other jobs are sent."""
    rig = rig_factory()
    odd, *others = _jobs(["a", "a", "a"])
    rig.plan([dataclasses.replace(odd, output=output), *others])
    with guard(30):
        result = await rig.engine(concurrency=1).run()
    assert isinstance(result.error, DiskError) and "File name too long" in str(result.error), result.error
    assert rig.sim.stats()["accepted_total"] == 2
    assert rig.counts()[JobState.DONE] == 2 and rig.counts()[JobState.PENDING] == 1


async def test_a_name_whose_characters_the_file_system_refuses_is_not_paid_for(rig_factory: Callable[..., Rig],
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """vfat, exFAT and SMB refuse ``: * ? " < > |`` in a name (EINVAL; a lookup says ENOENT). A value's are made
    ``_`` at plan; a template's own text may hold one (``take?{i}``): the folder's probe creates a file of that
    name, so its jobs are held back unsent (exit 6, the error named), the other folders' sent."""
    rig = rig_factory()
    *odd, other = _jobs(["a", "a", "b"])
    rig.plan([*(dataclasses.replace(job, output=job.output.replace("clip-", "take?")) for job in odd), other])
    real_open = os.open

    def fat_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_CREAT and "?" in os.path.basename(os.fsdecode(path)):  # type: ignore[arg-type]
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), os.fsdecode(path))  # type: ignore[arg-type]
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", fat_open)
    with guard(30):
        result = await rig.engine(concurrency=1).run()
    assert isinstance(result.error, DiskError) and "Invalid argument" in str(result.error), result.error
    assert "take?0.mp4" in str(result.error) and "2 job(s) were not sent" in str(result.error)
    assert rig.sim.stats()["accepted_total"] == 1  # folder b's job; nothing for the names vfat refuses
    assert rig.counts()[JobState.DONE] == 1 and rig.counts()[JobState.PENDING] == 2


# ----------------------------------------------------------------------------- the review's findings (2026-12-04)
async def test_a_job_another_manifest_listed_first_is_checked_where_its_download_stores_it(
    rig_factory: Callable[..., Rig],
) -> None:
    """A job two manifests list is stored in the folder of the one that listed it first (the other gets a link):
    that folder is the one checked, whichever manifest runs."""
    rig = rig_factory()
    shared, own = _jobs(["x", "y"])
    rig.plan([shared], manifest="first")
    rig.plan([shared, own], manifest="t")
    (rig.state / "outputs").mkdir(parents=True)
    (rig.state / "outputs" / "first").write_text("a file where the first manifest's folder should be")
    with guard(30):
        result = await rig.engine(concurrency=1).run()
    assert isinstance(result.error, DiskError) and "outputs/first/x/clip-0.mp4" in str(result.error), result.error
    assert rig.sim.stats()["accepted_total"] == 1  # the job only "t" lists; nothing paid for the shared one
    assert rig.ledger.get(shared.key).state is JobState.PENDING  # type: ignore[union-attr]


@pytest.mark.parametrize("linked", [0, 1], ids=["first-job-linked", "second-job-linked"])
async def test_a_link_at_one_name_holds_back_that_job_alone(rig_factory: Callable[..., Rig], linked: int) -> None:
    """A link planted at a video's own name (leading outside) is that job's problem, not its folder's: checked for
    every job even in a folder known to take files, and never held against the folder's other jobs."""
    rig = rig_factory()
    jobs = _jobs(["a", "a", "a"])
    rig.plan(jobs)
    folder = rig.state / "outputs" / "t" / "a"
    folder.mkdir(parents=True)
    outside = rig.state.parent / "secret.mp4"
    outside.write_bytes(b"not yours")
    (folder / f"clip-{linked}.mp4").symlink_to(outside)
    with guard(30):
        result = await rig.engine(concurrency=1).run()
    assert isinstance(result.error, DiskError) and "1 job(s) were not sent" in str(result.error), result.error
    assert rig.sim.stats()["accepted_total"] == 2
    assert rig.ledger.get(jobs[linked].key).state is JobState.PENDING  # type: ignore[union-attr]
    assert outside.read_bytes() == b"not yours"


@pytest.mark.parametrize("thing", ["folder", "fifo"])
async def test_a_folder_at_one_videos_name_holds_back_that_job_alone(rig_factory: Callable[..., Rig],
                                                                     thing: str) -> None:
    """A folder (or a FIFO) where a video is to be stored — the operator unpacked something there, a tool made
    ``clip.mp4/`` — is no place for it: the job was paid for, then its download failed ("Is a directory") run
    after run, the paid video waiting at the provider for someone to look (OS sweep, 2026-12-05). Now it is held
    back like a link planted at the name: not sent, nothing paid, the folder's other jobs sent."""
    rig = rig_factory()
    jobs = _jobs(["a", "a", "a"])
    rig.plan(jobs)
    folder = rig.state / "outputs" / "t" / "a"
    folder.mkdir(parents=True)
    if thing == "folder":
        (folder / "clip-1.mp4").mkdir()
        (folder / "clip-1.mp4" / "notes.txt").write_text("the operator's")
    else:
        os.mkfifo(folder / "clip-1.mp4")
    with guard(30):
        result = await rig.engine(concurrency=1).run()
    assert isinstance(result.error, DiskError) and "1 job(s) were not sent" in str(result.error), result.error
    assert "clip-1.mp4" in str(result.error) and "move it away" in str(result.error), result.error
    assert rig.sim.stats()["accepted_total"] == 2, "a video was paid for that has nowhere to go"
    assert rig.ledger.get(jobs[1].key).state is JobState.PENDING  # type: ignore[union-attr]
    assert rig.counts()[JobState.DONE] == 2


async def test_a_job_held_back_costs_no_turn_of_the_rate(rig_factory: Callable[..., Rig],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The check comes before the rate limiter: 20 jobs held back and 2 sent take 2 turns, not 22."""
    rig = rig_factory()
    rig.plan(_jobs(["bad"] * 20 + ["good"] * 2))
    (rig.state / "outputs" / "t").mkdir(parents=True)
    (rig.state / "outputs" / "t" / "bad").write_text("a file in the way")
    engine = rig.engine(concurrency=4)
    turns: list[str] = []
    acquire, take_now = engine.submit_limiter.acquire, engine.submit_limiter.take_now

    async def counted_acquire() -> None:
        turns.append("acquire")
        await acquire()

    def counted_take_now() -> None:
        turns.append("take_now")
        take_now()

    monkeypatch.setattr(engine.submit_limiter, "acquire", counted_acquire)
    monkeypatch.setattr(engine.submit_limiter, "take_now", counted_take_now)
    with guard(30):
        result = await engine.run()
    assert isinstance(result.error, DiskError) and "20 job(s) were not sent" in str(result.error)
    assert rig.sim.stats()["accepted_total"] == 2 and len(turns) == 2, turns


# --------------------------------------------------------------------------- a full disk (2026-12-05)
def _disk_with(rig: Rig, monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    """The state directory's disk, as if it had ``free`` bytes left (an empty file still fits: the probe passes)."""
    store = LocalStore(rig.state)
    monkeypatch.setattr(store, "room", lambda rel, other: Room(free, None))
    rig.store = store


def _left_succeeded(rig: Rig, key: str, video_url: str) -> None:
    """``key`` as an earlier run left it: paid for, its task succeeded, its video not downloaded (a kill)."""
    attempt = rig.ledger.mark_submitting(key)
    rig.ledger.mark_running(key, attempt, task_id="task-left", http_status=200)
    rig.ledger.mark_succeeded(key, video_url=video_url, url_expires_at=None, debug={})


async def test_a_full_disk_is_seen_before_a_video_is_paid_for(rig_factory: Callable[..., Rig],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk with no room left takes an empty file (the folder's probe passes), so before this guard a run paid for
    a whole wave of videos its downloads could not store — and a nightly run on the same disk once more each night."""
    rig = rig_factory()
    rig.plan(_jobs(["a", "a", "b"]))
    _disk_with(rig, monkeypatch, free=DISK_RESERVE + video_bytes(MODEL, {"duration": 5}) - 1)
    with guard(30):
        result = await rig.engine(concurrency=3).run()
    assert result.reason is StopReason.UNSTORABLE, result
    assert isinstance(result.error, DiskError) and "free space" in str(result.error), result.error
    assert "MiB free; its video may take 10 MiB (a guess from the 5 s asked for)" in str(result.error), result.error
    assert "kept free for the ledger" in str(result.error)
    assert rig.sim.stats()["accepted_total"] == 0 and rig.counts()[JobState.PENDING] == 3


@pytest.mark.parametrize(("room", "concurrency", "jobs"), [(3, 5, 5), (2, 1, 6)], ids=["room-binds", "slots-bind"])
async def test_the_room_counts_the_videos_the_run_still_waits_for(rig_factory: Callable[..., Rig],
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture,
                                                                  room: int, concurrency: int, jobs: int) -> None:
    """Room for three videos besides the reserve: a run with five free slots sends three (one group of submits,
    each job counting those admitted before it) and sends the others as those are stored — never more on their way
    than the disk could take, and no stop for it (review, 2026-12-05: a shortfall that only lasts while downloads
    are on their way ended the run's submits with exit 6). With room for two and one slot, every job goes in turn:
    a count of videos on their way that never came down would hold back the rest of the run."""
    rig = rig_factory()
    rig.plan(_jobs(["a"] * jobs))
    _disk_with(rig, monkeypatch, free=DISK_RESERVE + room * video_bytes(MODEL, {"duration": 5}))
    with guard(60):
        result = await rig.engine(concurrency=concurrency).run()
    assert result.reason is StopReason.COMPLETE and result.error is None, result
    assert rig.counts()[JobState.DONE] == jobs and rig.sim.stats()["accepted_total"] == jobs
    assert rig.sim.stats()["max_active"] == min(room, concurrency)
    said = [r.getMessage() for r in caplog.records if "no more than that are paid for and not stored at once" in
            r.getMessage()]
    if concurrency > room:
        assert len(said) == 1 and f"room for about {room} video(s)" in said[0], said
    else:
        assert said == [], said


async def test_a_disk_without_room_for_one_more_video_stops_the_submits(rig_factory: Callable[..., Rig],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for the videos on their way but not for one more even once they are stored: that is a full disk, and
    the submits stop (nothing paid for a video that could not be stored)."""
    rig = rig_factory()
    left, *new = _jobs(["a"] * 3)
    rig.plan([left, *new])
    _left_succeeded(rig, left.key, "http://sim.test/left.mp4")
    _disk_with(rig, monkeypatch, free=DISK_RESERVE + video_bytes(MODEL, {"duration": 5}) - 1)
    with guard(60):
        result = await rig.engine(concurrency=3).run()
    assert result.reason is StopReason.UNSTORABLE and isinstance(result.error, DiskError), result
    assert rig.sim.stats()["accepted_total"] == 0


async def test_the_room_counts_videos_paid_for_before_and_not_stored_yet(rig_factory: Callable[..., Rig],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A job an earlier run left succeeded (killed before its download) will take room too: counted before the
    first submit, so a disk with room for one video sends nothing new until that one is stored."""
    rig = rig_factory()
    left, *new = _jobs(["a", "a", "a"])
    rig.plan([left, *new])
    _left_succeeded(rig, left.key, "http://sim.test/slow.mp4")
    paid_while_downloading: list[int] = []

    async def slow_download(self: FetchLane, key: str) -> None:
        await anyio.sleep(60)  # still on its way while the submit lane decides (virtual time)
        paid_while_downloading.append(rig.sim.stats()["accepted_total"])

    monkeypatch.setattr(FetchLane, "_fetch_one", slow_download)
    _disk_with(rig, monkeypatch, free=DISK_RESERVE + video_bytes(MODEL, {"duration": 5}))
    with guard(600):
        result = await rig.engine(concurrency=3).run()
    assert paid_while_downloading[0] == 0, paid_while_downloading  # nothing sent while the earlier video was on its way
    assert result.reason is StopReason.COMPLETE, result
    assert rig.sim.stats()["accepted_total"] == 2  # then one at a time, as each is (here: said to be) stored


async def test_runner_submit_counts_the_videos_earlier_submits_left_for_collect(rig_factory: Callable[..., Rig],
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`runner submit` of a cron pair downloads nothing: the tasks earlier submits sent and the results `collect`
    could not store yet (a full disk) take room all the same (review, 2026-12-05: each submit paid for more)."""
    rig = rig_factory()
    left, *new = _jobs(["a", "a", "a"])
    rig.plan([left, *new])
    _left_succeeded(rig, left.key, "http://sim.test/left.mp4")
    _disk_with(rig, monkeypatch, free=DISK_RESERVE + video_bytes(MODEL, {"duration": 5}))
    with guard(30):
        result = await rig.engine(concurrency=3, collect=False).run()
    assert isinstance(result.error, DiskError), result
    assert "the 1 video(s) paid for and not stored yet and this one" in str(result.error), result.error
    assert rig.sim.stats()["accepted_total"] == 0


class _MovedAway:
    """An operator moving a folder of outputs to another disk mid-run and linking it back (once its first video is
    stored): from then on it leads outside the state directory, and nothing more can be stored there."""

    def __init__(self, folder: Path, away: Path) -> None:
        self.folder, self.away, self.moved = folder, away, False

    def emit(self, event: ev.Event, /) -> None:
        if isinstance(event, ev.Stored) and not self.moved:
            self.moved = True
            os.rename(self.folder, self.away)
            self.folder.symlink_to(self.away, target_is_directory=True)


async def test_a_folder_changed_under_the_run_is_seen_before_more_is_paid_for(rig_factory: Callable[..., Rig]) -> None:
    """The folder's probe was remembered for the whole run (operator probe, 2026-12-06: `outputs/<manifest>/a` moved
    to a bigger disk and linked back after its first video; the run paid for the other five, stored none). Probed
    again after PROBE_AGAIN_S, the change stops the folder's submits: only the job already on its way is paid."""
    rig = rig_factory()
    rig.plan(_jobs(["a"] * 6))
    folder = rig.state / "outputs" / "t" / "a"
    operator = _MovedAway(folder, rig.state.parent / "bigdisk")
    engine = Engine(rig.ledger, rig.client, engine_config(manifest="t", concurrency=1, rpm=None, poll_rpm=None),
                    reporter=operator, wall=loop_wall())
    with guard(30):
        result = await engine.run()
    assert operator.moved
    assert isinstance(result.error, DiskError) and "leads outside the state directory" in str(result.error), result
    assert rig.sim.stats()["accepted_total"] <= 2, "jobs were paid for after their folder could no longer take a file"
    counts = rig.counts()
    assert counts[JobState.DONE] == 1 and counts[JobState.PENDING] >= 4, counts

    folder.unlink()  # the operator puts the folder back: the next run stores what was paid and sends the rest
    os.rename(rig.state.parent / "bigdisk", folder)
    with guard(30):
        again = await rig.engine(concurrency=2).run()
    assert again.reason is StopReason.COMPLETE and again.error is None, again
    assert rig.sim.stats()["accepted_total"] == 6 and rig.counts()[JobState.DONE] == 6


def _two_disks(rig: Rig, monkeypatch: pytest.MonkeyPatch, *, outputs: int, ledger: int) -> None:
    """The outputs on a disk of their own with ``outputs`` bytes free, the state directory's (the ledger's) with
    ``ledger``."""
    store = LocalStore(rig.state)
    monkeypatch.setattr(store, "room", lambda rel, other: Room(outputs, ledger))
    rig.store = store


async def test_the_ledger_s_reserve_is_kept_on_the_ledger_s_disk_not_the_outputs(rig_factory: Callable[..., Rig],
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The room check kept 64 MiB for the ledger on the outputs' disk, and never looked at the ledger's own: with the
    outputs on another disk, a run with room for every video was held (exit 6), and one whose ledger disk was full
    paid for videos whose records could not be written. Each disk now holds what goes on it."""
    video = video_bytes(MODEL, {"duration": 5})
    rig = rig_factory()
    rig.plan(_jobs(["a", "a"]))
    _two_disks(rig, monkeypatch, outputs=2 * video, ledger=DISK_RESERVE - 1)
    with guard(30):
        held = await rig.engine(concurrency=2).run()
    assert held.reason is StopReason.UNSTORABLE, held
    assert isinstance(held.error, DiskError) and "the disk that holds the ledger" in str(held.error), held.error
    assert rig.sim.stats()["accepted_total"] == 0 and rig.counts()[JobState.PENDING] == 2

    _two_disks(rig, monkeypatch, outputs=2 * video, ledger=DISK_RESERVE)
    with guard(30):
        sent = await rig.engine(concurrency=2).run()
    assert sent.reason is StopReason.COMPLETE and sent.error is None, sent
    assert rig.counts()[JobState.DONE] == 2 and rig.sim.stats()["accepted_total"] == 2
