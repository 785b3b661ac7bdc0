"""``copy_ledger``: a ledger moves between SQLite and PostgreSQL, both ways, row for row; never from
a ledger a runner holds, never into one that exists."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import LedgerError, LedgerLocked, LedgerOutdated
from runner.jobs import JobSpec, JobState
from runner.ledger import DB_NAME, LedgerBackend, open_ledger
from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.postgres.transfer import copy_ledger


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={"i": i}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def key(i: int) -> str:
    return spec(i).key


def fill(ledger: LedgerBackend) -> None:
    """A ledger with a bit of everything: targets, dropped targets, every kind of attempt, runs, meta."""
    run = ledger.start_run(argv=["runner", "run", "m.yaml"])
    ledger.register("m", "d1", [spec(i) for i in range(8)])
    ledger.register("n", "d1", [spec(3)])
    for i in (0, 1, 2, 3):
        attempt = ledger.mark_submitting(key(i))
        assert attempt is not None and ledger.mark_running(key(i), attempt, task_id=f"t{i}", http_status=200)
    ledger.mark_succeeded(key(0), video_url="u", url_expires_at=9.5, debug={"seed": 1})
    ledger.mark_done(key(0), path="outputs/m/c0.mp4", sha256="s0", bytes=10)
    ledger.mark_failed(key(1), reason="boom")
    ledger.record_event(key(2), "poll", "error", http_status=502, detail="gateway")
    attempt = ledger.mark_submitting(key(4))
    assert attempt is not None
    ledger.mark_in_doubt(key(4), attempt, http_status=None, reason="TIMEOUT", message="read timeout")
    ledger.register("m", "d2", [spec(i) for i in range(1, 8)])  # drops job 0: an orphan of m
    ledger.set_meta("provider", "simulator")
    ledger.journal_renames([(key(0), "outputs/m/c0.mp4", "outputs/m/_orphans/x.mp4")])
    ledger.finish_run(run, exit_code=3, counts={"running": 2})


def snapshot(ledger: LedgerBackend) -> dict[str, object]:
    jobs = [job for job in ledger.iter_jobs()]
    return {
        "jobs": [(j.key, j.state, j.task_id, j.attempts, j.spent_usd, j.path, j.error, j.url_expires_at) for j in jobs],
        "m": [(j.key, j.output) for j in ledger.iter_jobs("m")],
        "n": [(j.key, j.output) for j in ledger.iter_jobs("n")],
        "attempts": [ledger.attempts(j.key) for j in jobs],
        "runs": ledger.runs(), "counts": ledger.counts(), "spent_m": ledger.spent_usd("m"),
        "orphans": ledger.orphans("m"), "dropped": ledger.dropped_spent_usd("m"), "meta": ledger.meta("provider"),
        "renames": ledger.journaled_renames(), "debug": ledger.debug_info(key(0)), "targets": ledger.targets_of(key(3)),
        "digest": ledger.manifest_digest("m"),
    }


def test_a_ledger_goes_to_postgres_and_back_row_for_row(pg_url: str, tmp_path: Path) -> None:
    with open_ledger(tmp_path / "one") as sqlite:
        fill(sqlite)
        before = snapshot(sqlite)
    told: list[int] = []

    def progress(total: int) -> Callable[[], None]:  # `runner ledger copy`'s ticker (every row read: one tick)
        told.append(total)
        return lambda: told.append(-1)

    report = copy_ledger(str(tmp_path / "one"), pg_url, progress=progress)
    assert report.rows["jobs"] == 8 and report.rows["attempts"] == 7 and report.rows["runs"] == 1
    assert told[0] == told.count(-1) >= sum(n for table, n in report.rows.items() if table != "meta")
    with open_postgres_ledger(pg_url, tmp_path / "one") as pg:
        assert snapshot(pg) == before
        pg.register("m", "d3", [spec(i) for i in range(1, 10)])  # new rows get new ids after the copied ones
        assert [j.key for j in pg.iter_jobs()][-2:] == [key(8), key(9)]
        assert pg.mark_submitting(key(8)) is not None
        after = snapshot(pg)
    told.clear()
    report = copy_ledger(pg_url, str(tmp_path / "two"), progress=progress)
    assert told[0] == told.count(-1) >= sum(n for table, n in report.rows.items() if table != "meta")
    with open_ledger(tmp_path / "two") as back:
        assert snapshot(back) == after


def test_no_copy_from_a_ledger_a_runner_holds(pg_url: str, tmp_path: Path) -> None:
    with open_ledger(tmp_path / "held") as sqlite:
        fill(sqlite)
        with pytest.raises(LedgerLocked):
            copy_ledger(str(tmp_path / "held"), pg_url)
    with open_postgres_ledger(pg_url, tmp_path) as pg:
        assert pg.total() == 0, "nothing was copied"
        with pytest.raises(LedgerLocked, match="runners hold the ledger"):
            copy_ledger(pg_url, str(tmp_path / "dst"))
    assert not (tmp_path / "dst" / DB_NAME).exists()
    copy_ledger(pg_url, str(tmp_path / "dst"))  # the runner stopped: its lease went with it


def test_no_copy_into_a_ledger_that_exists(pg_url: str, tmp_path: Path) -> None:
    with open_ledger(tmp_path / "a") as sqlite:
        fill(sqlite)
    with open_ledger(tmp_path / "b") as other:
        other.register("x", "d", [spec(20)])
    with pytest.raises(LedgerError, match="already exists"):
        copy_ledger(str(tmp_path / "a"), str(tmp_path / "b"))
    copy_ledger(str(tmp_path / "a"), pg_url)
    with pytest.raises(LedgerError, match="already holds a ledger"):
        copy_ledger(str(tmp_path / "a"), pg_url)
    with open_postgres_ledger(pg_url, tmp_path) as pg:
        assert pg.total() == 8 and pg.counts()[JobState.RUNNING] == 2


def test_a_copy_through_postgres_knows_which_commits_of_its_sqlite_source_it_holds(pg_url: str,
                                                                                    tmp_path: Path) -> None:
    """SQLite a → PostgreSQL → SQLite c: c, moved by hand into a's place, opens while a's mark saw no commit after the
    copy was taken; once a (reopened) and c each went on, c is refused there: it kept a's name and count, and was
    taken for a ahead of its mark — paying again for what a sent since."""
    a, c = tmp_path / "a", tmp_path / "c"
    with open_ledger(a) as sqlite:
        fill(sqlite)
    copy_ledger(str(a), pg_url)
    copy_ledger(pg_url, str(c))
    shutil.copytree(a, tmp_path / "a2")
    shutil.copyfile(c / DB_NAME, tmp_path / "a2" / DB_NAME)
    with open_ledger(tmp_path / "a2") as moved:  # holds every commit a's mark saw
        assert moved.counts()[JobState.RUNNING] == 2
    with open_ledger(a) as source:
        source.set_meta("moved_to", "")  # `runner ledger reopen a`
        assert source.mark_submitting(key(5)) is not None  # a paid one more
    with open_ledger(c) as copy:  # and c more than that, for other jobs
        for i in (6, 7):
            assert copy.mark_submitting(key(i)) is not None
    shutil.copyfile(c / DB_NAME, a / DB_NAME)
    with pytest.raises(LedgerOutdated, match="is not the ledger this state directory last recorded"):
        open_ledger(a)


def test_a_copy_that_fails_over_an_earlier_killed_copy_leaves_a_destination_runs_refuse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy killed left its marked ledger in b (runs refuse it); the next copy failed with an error (a source
    runner came back, a disk refused a write) and removed all it had made — the earlier copy's ledger too: b held
    nothing, and a run there made a new ledger and paid for every job again. A copy that fails now leaves b as a
    killed one does, when b held a killed copy's ledger before; into a b that held nothing, it still leaves nothing."""
    import runner.ledger.postgres.copy_destination as copy_destination
    import runner.ledger.postgres.transfer as transfer
    from runner.errors import UsageError
    from runner.service.opening import open_for_run

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    with open_ledger(a) as sqlite:
        fill(sqlite)

    def failing_at(point: str, error: BaseException) -> None:
        def crash(name: str) -> None:
            if name == point:
                raise error
        monkeypatch.setattr(transfer, "crash_point", crash)  # the rows and the moved mark
        monkeypatch.setattr(copy_destination, "crash_point", crash)  # the destination made, an earlier one cleared

    failing_at("ledger-copy-rows", KeyboardInterrupt())  # stopped: what a kill leaves (its marked ledger)
    with pytest.raises(KeyboardInterrupt):
        copy_ledger(str(a), str(b))
    for point in ("ledger-copy-made", "ledger-copy-cleared", "ledger-copy-rows"):
        failing_at(point, RuntimeError("a disk refused a write"))
        with pytest.raises(RuntimeError):
            copy_ledger(str(a), str(b))
        with pytest.raises(UsageError, match=r"unfinished copy|did not finish"):  # what a run does first
            open_for_run(b)
        with pytest.raises(RuntimeError):
            copy_ledger(str(a), str(c))
        assert not [p for p in c.iterdir() if p.name.startswith(DB_NAME)], point
    monkeypatch.undo()
    copy_ledger(str(a), str(b))  # starts over
    assert sorted(p.name for p in b.iterdir() if p.name.startswith(DB_NAME)) == [DB_NAME]


def test_a_ledger_a_run_made_in_the_destination_as_the_copy_began_is_never_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run made a ledger in b (and wrote a paid task ahead) between the copy's first look at b and its lock: the
    copy refused, as it should — and its clean-up removed that ledger, the only record of a paid task."""
    import runner.ledger.postgres.copy_destination as copy_destination

    a, b = tmp_path / "a", tmp_path / "b"
    with open_ledger(a) as sqlite:
        fill(sqlite)
    acquire, ran = copy_destination.LedgerLock.acquire, []

    def a_run_first(*args: object, **kwargs: object) -> object:
        if not ran and kwargs.get("creating"):  # the destination's lock (not the source's): a run takes it first
            ran.append(True)
            with open_ledger(b) as run:
                run.register("m", "d", [spec(20)])
                assert run.mark_submitting(key(20)) is not None
        return acquire(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(copy_destination.LedgerLock, "acquire", a_run_first)
    with pytest.raises(LedgerError, match="already exists"):
        copy_ledger(str(a), str(b))
    monkeypatch.undo()
    with open_ledger(b, readonly=True) as kept:
        job = kept.get(key(20))
        assert job is not None and job.state is JobState.SUBMITTING
