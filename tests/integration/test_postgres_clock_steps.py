"""A PostgreSQL ledger's host clock stepped during a run (an NTP correction, a VM restored from a snapshot).

The host marks (``runner/ledger/postgres/hostmarks.py``) say when each connection last committed, and an open
compares that time with the server's clock to tell a row pruned after 35 days without a write from a row a restore
took away. The time was this host's ``time.time()`` plus the offset to the server's clock measured as the ledger
opened: a host clock stepped back three weeks mid-run wrote marks three weeks old, and a ledger restored from a
backup before the next run went by as "cannot tell" — every job written ahead or recorded since was paid for again.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerLostCommits
from runner.jobs import JobSpec
from runner.ledger.postgres import hostmarks, open_postgres_ledger
from runner.ledger.postgres.hostmarks import FOLDER
from runner.ledger.postgres.reach import dropped
from runner.reporting.inspect import status_lines
from runner.service.reading import summary_of
from runner.testing_pg import TempPostgres

DAY = 86400.0


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _stepped_mid_run(url: str, state: Path, monkeypatch: pytest.MonkeyPatch, step: float) -> None:
    """One run: the ledger opened on a true clock, then the host clock stepped by ``step`` seconds, then job 1 paid
    for (written ahead, its task id recorded) and the ledger closed; the clock is set right after."""
    real = time.time
    try:
        with open_postgres_ledger(url, state) as ledger:
            ledger.register("m", "d", [spec(1)])
            monkeypatch.setattr(time, "time", lambda: real() + step)
            attempt = ledger.mark_submitting(spec(1).key)
            assert attempt is not None and ledger.mark_running(spec(1).key, attempt, task_id="task-1", http_status=200)
    finally:  # set right (NTP) once the run has ended
        monkeypatch.setattr(time, "time", real)


@pytest.mark.parametrize("step", [-21 * DAY, 40 * DAY], ids=["back-3-weeks", "ahead-40-days"])
def test_a_host_mark_says_when_its_commit_was_by_the_servers_clock_whatever_the_host_clock_did(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: float
) -> None:
    """The mark's time is the time its row of write_marks holds (the server's, the one the prune reads)."""
    state = tmp_path / "state"
    _stepped_mid_run(pg_url, state, monkeypatch, step)
    seen = [hostmarks._read(file) for file in (state / FOLDER).glob("*.mark")]
    [mark] = [s for s in seen if s is not None and s.mark > 0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        row = admin.execute("SELECT at FROM write_marks WHERE conn = %s", (mark.conn,)).fetchone()
    assert row is not None and abs(mark.at - row[0]) < 1.0, (mark.at, row[0])


def test_a_ledger_restored_after_a_run_whose_host_clock_stepped_back_is_still_refused(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The clock set back three weeks mid-run (then right again): the restore is refused, not 'cannot tell'."""
    state = tmp_path / "state"
    _stepped_mid_run(pg_url, state, monkeypatch, -21 * DAY)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DELETE FROM write_marks")  # restored from a backup taken before that run
    with pytest.raises(LedgerLostCommits), open_postgres_ledger(pg_url, state):
        pass  # the next run: it would send job 1 again
    assert "cannot tell" not in caplog.text


@pytest.mark.parametrize("step", [-DAY, DAY], ids=["back-a-day", "ahead-a-day"])
def test_the_ledgers_clock_stays_the_servers_when_the_host_clock_steps_between_two_lease_renewals(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: float
) -> None:
    """The ledger's clock was this host's ``time.time()`` plus the offset measured at the last renewal (every 15 s):
    a step in between moved every time written or compared until the next one. Stepped a day ahead, a write-ahead
    was stamped a day ahead — in doubt, it held a slot of every runner's concurrency for a day and 15 minutes — and
    a recovery saw every other runner's lease expired (their POSTs on the wire put in doubt)."""
    real = time.time
    with open_postgres_ledger(pg_url, tmp_path) as other:  # a live runner on another host, writing ahead
        other.register("m", "d", [spec(1), spec(2)])
        assert other.mark_submitting(spec(1).key) is not None
        with open_postgres_ledger(pg_url, tmp_path) as ledger:
            monkeypatch.setattr(time, "time", lambda: real() + step)
            try:
                stamped = ledger._clock()
                assert ledger.recover_expired(ledger.owner) == 0, "the other runner is live"
                assert ledger.mark_submitting(spec(2).key) is not None
            finally:
                monkeypatch.setattr(time, "time", real)
            with psycopg.connect(pg_url, autocommit=True) as admin:
                server = admin.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
            job = ledger.get(spec(2).key)
            assert job is not None and job.submitted_at is not None
            assert abs(stamped - server) < 5 and abs(job.submitted_at - server) < 5, (stamped, job.submitted_at, server)


@pytest.mark.skipif(not hasattr(time, "CLOCK_BOOTTIME"), reason="no steady clock that counts a suspend here: the wall"
                    " clock is still asked, as a suspend may have let the row be pruned")
def test_a_server_that_lost_this_runners_commit_is_refused_after_the_host_clock_stepped_weeks_ahead(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """A commit a second old by the steady clock, three weeks old by a wall clock stepped ahead since (a host that
    started on a clock weeks behind — no battery-backed clock — set right by NTP mid-run): its row gone on a server
    connected to again was 'pruned, cannot tell', and the run went on writing to a server that lost its commits."""
    real = time.time
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        assert ledger.mark_submitting(spec(1).key) is not None
        monkeypatch.setattr(time, "time", lambda: real() + 21 * DAY)
        try:
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("DELETE FROM write_marks")  # a failover to a replica that lagged behind that write
                admin.execute("SELECT pg_terminate_backend(%s)", (ledger._conn.raw.info.backend_pid,))
            for _ in range(50):  # the goodbye crosses loopback
                if dropped(ledger._conn.raw):
                    break
                threading.Event().wait(0.01)
            with pytest.raises(LedgerLostCommits):
                ledger.get(spec(1).key)
        finally:
            monkeypatch.setattr(time, "time", real)
    assert "cannot tell" not in caplog.text


def test_status_from_a_host_whose_clock_is_off_says_the_heartbeat_by_the_ledgers_clock_and_no_negative_age(
    pg_url: str, tmp_path: Path
) -> None:
    """`runner status` on a host an hour ahead said a live runner's last heartbeat was '1h00m ago' (not expired),
    and on one an hour behind the oldest running task had run '-1h00m'. The heartbeat's age is the ledger's (the
    server's clock, as the lease's), and a task sent after this host's 'now' is said to be so."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        attempt = ledger.mark_submitting(spec(1).key)
        assert attempt is not None and ledger.mark_running(spec(1).key, attempt, task_id="task-1", http_status=200)
        ahead = "\n".join(status_lines(summary_of(ledger, "m", now=time.time() + 3600)))
        behind = "\n".join(status_lines(summary_of(ledger, "m", now=time.time() - 3600)))
    heartbeat = next(line for line in ahead.splitlines() if "last heartbeat" in line)
    assert "last heartbeat 0s ago" in heartbeat or "last heartbeat 1s ago" in heartbeat, heartbeat
    oldest = next(line for line in behind.splitlines() if "oldest running task" in line)
    assert "-" not in oldest.split("task", 1)[1].split("(")[0] and "ahead of this machine's clock" in oldest, oldest
