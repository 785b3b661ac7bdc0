"""The rows of ``write_marks``: each connection that writes keeps one (``runner/ledger/postgres/marks.py``), and a
connection keeps it after its close (a later open checks it against the state directory's marks,
``runner/ledger/postgres/hostmarks.py``); a runner killed (SIGKILL, a power cut) left its row for ever.

Rows no write touched for :data:`PRUNE_AFTER_S` are deleted when a runner opens the ledger for writing. A row is
read only by its own connection, in its own process: after a COMMIT whose answer was lost, and when it connects
again (is its last acknowledged COMMIT still there?). A live connection whose row went that way — idle, or its
process stopped, for days — must not read the missing row as a server that lost its commits, nor as a COMMIT
rolled back (written again): it is said to be unknowable instead, and the lease (long expired after such a
stall) stops the run before anything is sent.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerLostCommits
from runner.jobs import JobSpec, JobState
from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.postgres.clock import stamp
from runner.ledger.postgres.hostmarks import FOLDER
from runner.ledger.postgres.marks import PRUNE_AFTER_S
from runner.testing_pg import TempPostgres

DAY = 86400.0


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _marks(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as admin:
        return {row[0]: row[1] for row in admin.execute("SELECT conn, mark FROM write_marks").fetchall()}


def test_rows_of_connections_that_wrote_nothing_for_weeks_are_pruned_when_a_runner_opens_the_ledger(
    pg_url: str, tmp_path: Path
) -> None:
    with open_postgres_ledger(pg_url, tmp_path) as first:
        first.register("m", "d", [spec(1)])
    with psycopg.connect(pg_url, autocommit=True) as admin:  # what runners killed left: one old, one recent
        now = admin.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
        admin.execute("INSERT INTO write_marks (conn, mark, at) VALUES ('killed-weeks-ago', 7, %s),"
                      " ('killed-an-hour-ago', 3, %s)", (now - PRUNE_AFTER_S - 60, now - 3600))
    assert PRUNE_AFTER_S >= 7 * DAY, "far past any lease, stall or COMMIT in progress"
    with open_postgres_ledger(pg_url, tmp_path, readonly=True) as reader:
        assert reader.total() == 1
        assert set(_marks(pg_url)) >= {"killed-weeks-ago", "killed-an-hour-ago"}, "a reader writes nothing"
    with open_postgres_ledger(pg_url, tmp_path) as runner:
        marks = _marks(pg_url)
        assert "killed-weeks-ago" not in marks and marks["killed-an-hour-ago"] == 3
        assert runner._conn._id in marks, "its own row, fresh"


def test_a_live_connection_whose_row_was_pruned_is_not_read_as_a_server_that_lost_commits(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A runner's last write over half PRUNE_AFTER_S ago (its process stopped, or a review page left open): another runner's start
    pruned its row, then the server dropped its connection. It said "the server lost changes this runner saw
    committed … stop every runner" and wrote nothing more — for a row pruned, not a commit lost."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        key = spec(1).key
        attempt = ledger.mark_submitting(key)
        assert attempt is not None
        conn = ledger._conn
        ago = PRUNE_AFTER_S / 2 + DAY
        steady, wall = stamp()
        conn._committed_at = (steady - ago, wall - ago)  # as if that long went by
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("UPDATE write_marks SET at = at - %s", (PRUNE_AFTER_S + 60,))
        [mark] = (tmp_path / FOLDER).glob("*.mark")  # and this state directory's mark of it (hostmarks)
        mark.write_text(re.sub(r"^mark (\d+) (\S+)$", lambda m: f"mark {m[1]} {float(m[2]) - PRUNE_AFTER_S - 60:017.3f}",
                               mark.read_text(encoding="utf-8"), flags=re.MULTILINE), encoding="utf-8")
        with open_postgres_ledger(pg_url, tmp_path):  # another runner starts: the row goes
            pass
        assert conn._id not in _marks(pg_url)
        with psycopg.connect(pg_server.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.raw.info.backend_pid,))
        time.sleep(0.2)  # the goodbye crosses loopback
        job = ledger.get(key)  # on a new connection
        assert job is not None and job.state is JobState.SUBMITTING
        assert "cannot tell" in caplog.text
        assert ledger.mark_in_doubt(key, attempt, http_status=None, reason="test", message="test")  # it writes on


def test_a_recent_commit_whose_row_is_gone_is_still_a_server_that_lost_commits(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path
) -> None:
    """The prune's rule leaves the check whole where it can tell: a row gone under a write of a minute ago was not
    pruned (PRUNE_AFTER_S), so the server lost it."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        assert ledger.mark_submitting(spec(1).key) is not None
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("DELETE FROM write_marks")  # as a restore from a backup taken before that write
            admin.execute("SELECT pg_terminate_backend(%s)", (ledger._conn.raw.info.backend_pid,))
        time.sleep(0.2)
        with pytest.raises(LedgerLostCommits):
            ledger.get(spec(1).key)


@pytest.mark.parametrize("days", [0, PRUNE_AFTER_S / 2 / DAY + 1])
def test_a_commit_whose_answer_was_lost_and_whose_row_is_gone_is_rolled_back_only_when_it_cannot_have_been_pruned(
    pg_url: str, tmp_path: Path, days: float
) -> None:
    """The look after a COMMIT's answer was lost (``_marked``) finds no row. A COMMIT sent seconds ago: no prune took
    its row (PRUNE_AFTER_S), so it was rolled back, and the write is done once more. Sent over half that ago (stopped in
    between): the row may have been committed and pruned since, so it is not known — never written again (a
    write-ahead done twice). It read "rolled back" whatever the age."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        conn = ledger._conn
        conn._mark += 1  # as if a COMMIT of this mark was sent and its answer lost ...
        steady, wall = stamp()
        conn._sent_at = (steady - days * DAY, wall - days * DAY)  # ... that long ago
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("DELETE FROM write_marks")  # and its row is gone
        assert conn._marked() is (False if days == 0 else None)
