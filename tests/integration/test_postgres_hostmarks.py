"""A PostgreSQL ledger restored from a backup *between* runs (hunt-pg2, item 2; ``runner/ledger/postgres/hostmarks.py``).

A runner sees a server that lost its commits only on a reconnect, through its own row of ``write_marks``; a new
process had no commit of its own to look for, so a ledger put back from a backup (or failed over to a replica that
lagged) while no runner ran was taken as it was: the jobs written ahead and recorded since read pending, and the
next run paid for them again. Each writable connection now leaves a mark in the state directory, and a writable
open checks the server still holds every mark of this ledger found there — without ever refusing for a row the
week's prune took, a copy of the ledger, or a clean sequence of runs.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerLostCommits
from runner.jobs import JobSpec, JobState
from runner.ledger.postgres import hostmarks, open_postgres_ledger
from runner.ledger.postgres.hostmarks import FOLDER
from runner.ledger.postgres.marks import PRUNE_AFTER_S
from runner.ledger.postgres.transfer import copy_ledger
from runner.service.outcome import EXIT_USAGE, exit_code_for
from runner.testing_pg import TempPostgres


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _paid(url: str, state: Path, i: int) -> None:
    """One run: job ``i`` written ahead and its task id recorded (two durable commits), then closed."""
    with open_postgres_ledger(url, state) as ledger:
        ledger.register("m", "d", [spec(i)])
        attempt = ledger.mark_submitting(spec(i).key)
        assert attempt is not None and ledger.mark_running(spec(i).key, attempt, task_id=f"task-{i}", http_status=200)


def _rewrite(file: Path, **fields: str) -> None:
    text = file.read_text(encoding="utf-8")
    for name, value in fields.items():
        text = re.sub(rf"^{name} .*$", f"{name} {value}", text, flags=re.MULTILINE)
    file.write_text(text, encoding="utf-8")


def test_a_ledger_restored_from_a_backup_between_runs_is_refused_at_the_next_writable_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with TempPostgres.start() as server:  # its own server: its data directory is put back below
        url = server.create_database("x")
        with open_postgres_ledger(url, state) as ledger:
            ledger.register("m", "d", [spec(1)])
        server.halt("fast")
        backup = tmp_path / "backup"  # last night's backup: the job planned, nothing sent
        subprocess.run(["cp", "-a", str(server.data_dir), str(backup)], check=True)
        server.resume()
        _paid(url, state, 1)  # a run pays for the job and ends
        server.halt("fast")  # the DBA restores last night's backup
        shutil.rmtree(server.data_dir)
        subprocess.run(["cp", "-a", str(backup), str(server.data_dir)], check=True)
        server.resume()
        with pytest.raises(LedgerLostCommits, match=r"lost changes this state directory saw committed") as lost:
            open_postgres_ledger(url, state)  # the next run: it would send the job again
        assert exit_code_for(lost.value) == EXIT_USAGE and f"mv {state / FOLDER}" in str(lost.value)
        with open_postgres_ledger(url, state, readonly=True) as reader:  # `runner ls` still reads it
            job = reader.get(spec(1).key)
            assert job is not None and job.state is JobState.PENDING
        (state / FOLDER).rename(state / f"{FOLDER}.old")  # the operator compared it with the console, as the line says
        with open_postgres_ledger(url, state) as ledger:
            assert ledger.total() == 1


def test_a_clean_sequence_of_runs_and_two_at_once_are_never_refused_and_the_marks_stay_few(
    pg_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    for i in range(3):
        _paid(pg_url, state, i)
        assert len(list((state / FOLDER).glob("*.mark"))) == 1  # each open's first commit covers the marks before
    with open_postgres_ledger(pg_url, state) as one, open_postgres_ledger(pg_url, state) as two:
        marks = [file.name for file in (state / FOLDER).glob("*.mark")]
        assert len(marks) == 1 and two._conn.mark_id in marks[0]  # two's open took one's mark away ...
        assert one.mark_submitting(spec(0).key) is None and two.total() == 3
        one.renew_lease(one.owner)
        assert len(list((state / FOLDER).glob("*.mark"))) == 2  # ... and one's next commit made it again
    _paid(pg_url, state, 4)
    assert len(list((state / FOLDER).glob("*.mark"))) == 1


def test_a_mark_whose_row_is_gone_refuses_while_young_and_cannot_tell_once_old_enough_to_be_pruned(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    _paid(pg_url, state, 1)
    [mark] = (state / FOLDER).glob("*.mark")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DELETE FROM write_marks")  # as a restore from before its first write (or a prune)
        now = admin.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
    with pytest.raises(LedgerLostCommits):
        open_postgres_ledger(pg_url, state)
    number = mark.read_text(encoding="utf-8").split("\nmark ")[1].split()[0]
    _rewrite(mark, mark=f"{number} {now - PRUNE_AFTER_S / 2 - 3600:017.3f}")  # its last commit 3.5 days ago
    with open_postgres_ledger(pg_url, state) as ledger:
        assert ledger.total() == 1
    assert "cannot tell" in caplog.text and not mark.exists()


def test_a_live_runners_mark_taken_away_is_made_again_at_its_next_commit_and_still_refuses_a_restore(
    pg_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with open_postgres_ledger(pg_url, state) as live:
        live.register("m", "d", [spec(1)])
        _paid(pg_url, state, 2)  # another runner's open and commits: the live one's mark goes
        assert not list((state / FOLDER).glob(f"*-{live._conn.mark_id}.mark"))
        attempt = live.mark_submitting(spec(1).key)
        assert attempt is not None and list((state / FOLDER).glob(f"*-{live._conn.mark_id}.mark"))
        mine = live._conn.mark_id
    for other in (state / FOLDER).glob("*.mark"):  # only the live runner's mark is left to tell
        if mine not in other.name:
            other.unlink()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DELETE FROM write_marks")  # as a restore from before those writes
    with pytest.raises(LedgerLostCommits):
        open_postgres_ledger(pg_url, state)


def test_a_copy_of_the_ledger_is_another_ledger_not_one_that_lost_commits(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path
) -> None:
    """`runner ledger copy` carries no write_marks rows: were its name copied, the marks of the source would be taken
    for the copy's, and every run on the copy refused."""
    state = tmp_path / "state"
    _paid(pg_url, state, 1)
    copy = pg_server.create_database()
    copy_ledger(pg_url, copy)
    with open_postgres_ledger(copy, state) as ledger:
        job = ledger.get(spec(1).key)
        assert job is not None and job.state is JobState.RUNNING


def _age(url: str, mark: Path, days: float) -> None:
    """The run that left ``mark`` (and its row of write_marks) ended ``days`` ago by the server's clock."""
    with psycopg.connect(url, autocommit=True) as admin:
        now = admin.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
        admin.execute("UPDATE write_marks SET at = %s", (now - days * 86400,))
    number = mark.read_text(encoding="utf-8").split("\nmark ")[1].split()[0]
    _rewrite(mark, mark=f"{number} {now - days * 86400:017.3f}")


def test_a_weekly_batch_s_ledger_restored_between_its_runs_is_refused(pg_url: str, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A batch run once a week: its last commit is ~7 days old when the next run opens the ledger. Rows were pruned
    after 7 days and a mark past 3.5 days whose row was gone was 'cannot tell': a restore from a backup taken before
    last week's run (the rows of its writes not there) went through with a warning, and every job that run wrote
    ahead or recorded read pending and was paid for again. The open's own prune took the row of a week-old run too,
    so the warning came every week with no restore at all."""
    state = tmp_path / "state"
    _paid(pg_url, state, 1)
    [mark] = (state / FOLDER).glob("*.mark")
    _age(pg_url, mark, 7 + 1 / 24)  # last Sunday's run, a little over a week ago: nothing restored
    with open_postgres_ledger(pg_url, state) as ledger:
        assert ledger.total() == 1
    assert "cannot tell" not in caplog.text, caplog.text
    _paid(pg_url, state, 2)
    [mark] = (state / FOLDER).glob("*.mark")
    _age(pg_url, mark, 6)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DELETE FROM write_marks")  # restored from a backup taken before that run
    with pytest.raises(LedgerLostCommits):
        open_postgres_ledger(pg_url, state)


def test_a_mark_read_as_its_runner_rewrites_it_is_read_again_not_refused(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runners share a state directory: one reads the marks as it opens while the other rewrites its own in place
    (one ``pwrite`` after each COMMIT, read with no lock). A read that lands mid-write mixes the new digits and the
    old (``…0129`` → ``…0130`` read as ``…0139``): a mark past its row, and a healthy ledger was refused (exit 2,
    nothing sent). The read here is torn once, as such a read would be."""
    state = tmp_path / "state"
    _paid(pg_url, state, 1)
    [mark] = (state / FOLDER).glob("*.mark")
    real = hostmarks._read
    torn: list[Path] = []

    def tearing(file: Path) -> hostmarks.Seen | None:
        seen = real(file)
        if seen is None or torn:
            return seen
        torn.append(file)
        return dataclasses.replace(seen, mark=seen.mark + 9)

    monkeypatch.setattr(hostmarks, "_read", tearing)
    with open_postgres_ledger(pg_url, state) as ledger:
        assert ledger.total() == 1
    assert torn == [mark]


def _emptied(url: str) -> None:
    """The database put back as it was before the batch's first run (a backup from the night before): no ledger."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP SCHEMA public CASCADE")
        admin.execute("CREATE SCHEMA public")


def test_a_database_restored_to_before_its_ledger_existed_is_refused_not_made_again(pg_url: str,
                                                                                     tmp_path: Path) -> None:
    """The batch started this morning; the server died and last night's backup came back: no ledger at all. The
    marks name the ledger by its id, which the empty database does not have, so none was looked up, a new empty ledger
    was made, and the run paid for every job again."""
    state = tmp_path / "state"
    _paid(pg_url, state, 1)
    _emptied(pg_url)
    for _ in range(2):  # refused every time: the refusal gives the database no name the marks would miss
        with pytest.raises(LedgerLostCommits, match=r"holds no ledger of this runner's") as refused:
            open_postgres_ledger(pg_url, state)
        said = str(refused.value)
        assert "Nothing was sent" in said and f"mv {state / FOLDER}" in said and "password" not in said
    with psycopg.connect(pg_url, autocommit=True) as admin:  # nothing planned in the empty database
        assert admin.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    (state / FOLDER).rename(state / f"{FOLDER}.old")  # dropped on purpose: the operator sets the marks aside
    with open_postgres_ledger(pg_url, state) as ledger:
        assert ledger.total() == 0


def test_a_ledger_made_again_at_its_place_by_another_host_is_refused_here(pg_url: str, tmp_path: Path) -> None:
    """Host B, whose state directory never saw the old ledger, made a new one in the restored database; host A's
    marks name the old ledger at that place, and A refuses to pay for its jobs again."""
    here, there = tmp_path / "a", tmp_path / "b"
    _paid(pg_url, here, 1)
    _emptied(pg_url)
    with open_postgres_ledger(pg_url, there) as ledger:  # B cannot know: its state directory has no mark
        ledger.register("m", "d", [spec(1)])
    with pytest.raises(LedgerLostCommits, match=r"holds another ledger"):
        open_postgres_ledger(pg_url, here)


def test_marks_of_ledgers_elsewhere_and_of_a_ledger_dropped_long_ago_refuse_nothing(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two ledgers sharing one state directory (two databases) never refuse each other; a mark of a ledger at this
    place older than the prune's half cannot tell a restore from a drop on purpose: a warning, and it goes."""
    state = tmp_path / "state"
    other = pg_server.create_database()
    for i in (1, 3):
        _paid(pg_url, state, i)
        _paid(other, state, i + 1)
    marks = sorted((state / FOLDER).glob("*.mark"))
    _emptied(pg_url)
    for mark in marks:
        number, at = mark.read_text(encoding="utf-8").split("\nmark ")[1].split()
        _rewrite(mark, mark=f"{number} {float(at) - PRUNE_AFTER_S / 2 - 60:017.3f}")
    with caplog.at_level("WARNING", "runner.ledger"), open_postgres_ledger(pg_url, state) as ledger:
        assert ledger.total() == 0
    assert "names another PostgreSQL ledger" in caplog.text
    _paid(other, state, 5)


def test_two_ledgers_named_by_one_url_and_pgdatabase_sharing_a_state_directory_refuse_nothing(
    pg_server: TempPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One URL without a database (``postgresql://runner@host:port``), the database chosen by ``PGDATABASE`` per
    batch, one state directory: two ledgers in two databases. The place a mark names was the URL's text, the same for
    both, so the second batch's first open read the first one's marks as 'another ledger at this place' and refused
    (exit 2) a healthy setup; the place is the database the server says it is."""
    state = tmp_path / "state"
    first, second = pg_server.create_database(), pg_server.create_database()
    bare = first.rsplit("/", 1)[0]  # the URL without its database
    assert bare == second.rsplit("/", 1)[0]
    for i, url in ((1, first), (2, second), (3, first)):
        monkeypatch.setenv("PGDATABASE", url.rsplit("/", 1)[1])
        _paid(bare, state, i)
    monkeypatch.delenv("PGDATABASE")
    for url, keys in ((first, {spec(1).key, spec(3).key}), (second, {spec(2).key})):
        with open_postgres_ledger(url, state) as ledger:
            assert {job.key for job in ledger.iter_jobs()} == keys


def test_a_ledger_copied_out_and_back_to_its_place_is_the_same_ledger_not_one_made_again(
    pg_url: str, tmp_path: Path
) -> None:
    """`runner ledger copy` out to a state directory and back into the database it came from (a server made again,
    a major version upgraded by hand): every job is there (the source was held and marked moved), but the copy is
    another ledger by name, and the marks of the first read as a ledger dropped and made again: refused, exit 2."""
    state, side = tmp_path / "state", tmp_path / "side"
    _paid(pg_url, state, 1)
    copy_ledger(pg_url, str(side))
    _emptied(pg_url)
    copy_ledger(str(side), pg_url)
    with open_postgres_ledger(pg_url, state) as ledger:
        job = ledger.get(spec(1).key)
        assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-1"
    _paid(pg_url, state, 2)  # and its marks, of the copy now, refuse nothing either


def test_a_ledger_written_after_its_copy_was_taken_and_then_replaced_by_it_is_still_refused(
    pg_url: str, tmp_path: Path
) -> None:
    """The copy stands for its source only up to when it was taken: the source reopened and paid for more, then put
    back from the older copy, lost those, and is refused as before."""
    from runner.service.copying import reopen_ledger

    state, side = tmp_path / "state", tmp_path / "side"
    _paid(pg_url, state, 1)
    copy_ledger(pg_url, str(side))
    reopen_ledger(pg_url)
    _paid(pg_url, state, 2)  # paid after the copy was taken: not in it
    _emptied(pg_url)
    copy_ledger(str(side), pg_url)
    with pytest.raises(LedgerLostCommits, match=r"holds no ledger of this runner's"):
        open_postgres_ledger(pg_url, state)


def test_reopening_a_postgresql_ledger_leaves_no_folder_named_by_its_url(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runner ledger reopen URL` opened the ledger with the URL as its state directory: its write mark went into a
    folder ``postgresql:/runner@host:port/db/.ledger-marks`` made in the current directory (one per URL reopened)."""
    from runner.service.copying import reopen_ledger

    _paid(pg_url, tmp_path / "state", 1)
    copy_ledger(pg_url, str(tmp_path / "side"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert reopen_ledger(pg_url) is not None
    assert list(work.iterdir()) == []
    _paid(pg_url, tmp_path / "state", 2)  # reopened: runs use it again
