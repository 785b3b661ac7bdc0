"""A PostgreSQL ledger whose connection the server dropped: a restart, a failover, ``pg_terminate_backend``.

The rules (``runner/ledger/postgres/connection.py``): a drop seen before a statement is sent is made good by a
new connection; a read cut off mid-way is read once more; a write cut off before its COMMIT was sent was rolled
back and is written once more; a write cut off during its COMMIT may or may not be committed, so it is never
written again (the run stops, exit 3, and the next start resumes from what was recorded).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerError, LedgerLostCommits, LedgerRolledBack, LedgerUnreachable
from runner.jobs import JobSpec, JobState
from runner.ledger.postgres import PostgresLedger, open_postgres_ledger
from runner.ledger.postgres import connection as pg_connection
from runner.service.outcome import EXIT_STOPPED, EXIT_USAGE, exit_code_for
from runner.testing_pg import TempPostgres


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _terminate_when_busy(admin_url: str, ledger: PostgresLedger, *, times: int = 1) -> threading.Thread:
    """A thread that, ``times`` times, waits until the ledger's connection runs a statement that sleeps in the
    server (a ``pg_sleep``, or a trigger's) and terminates its backend then: a drop *during* a statement."""
    database = ledger.location.rsplit("/", 1)[1]

    def kill() -> None:
        killed: list[int] = []  # a terminated backend may still show as sleeping a moment: never counted twice
        with psycopg.connect(admin_url, autocommit=True) as admin:
            for _ in range(times):
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    row = admin.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'runner'"
                        " AND state = 'active' AND wait_event = 'PgSleep' AND NOT pid = ANY(%s)",
                        (database, killed)).fetchone()
                    if row is not None:
                        admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                        killed.append(row[0])
                        break
                    time.sleep(0.02)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


@contextmanager
def _sleepy(url: str, when: str) -> Iterator[None]:
    """Every change of a job's row sleeps half a second in the server: ``when`` 'before' the update, or at the
    COMMIT ('commit': a deferred constraint trigger runs as the COMMIT is processed)."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE FUNCTION nap() RETURNS trigger LANGUAGE plpgsql AS $$"
                      " BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$")
        if when == "before":
            admin.execute("CREATE TRIGGER nap BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION nap()")
        else:
            admin.execute("CREATE CONSTRAINT TRIGGER nap AFTER UPDATE ON jobs DEFERRABLE INITIALLY DEFERRED"
                          " FOR EACH ROW EXECUTE FUNCTION nap()")
    yield
    with psycopg.connect(url, autocommit=True) as admin:  # a new connection: the test may have restarted the server
        admin.execute("DROP TRIGGER nap ON jobs")


def test_a_connection_the_server_dropped_while_idle_is_made_again_before_the_next_call(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path
) -> None:
    """The multi-host sweep: one pg_terminate_backend stopped every runner (exit 3). The server's goodbye waits on
    the idle connection's socket: it is seen before the next statement is sent, and the statement goes to a new
    connection. Nothing was sent on the old one, so nothing is in doubt."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        before = ledger._conn.raw.info.backend_pid
        with psycopg.connect(pg_server.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (pg_url.rsplit("/", 1)[1],))
        time.sleep(0.2)  # the goodbye crosses loopback
        assert ledger.mark_submitting(spec(1).key) is not None, "the call went to a new connection"
        assert ledger._conn.raw.info.backend_pid != before
        assert ledger.total() == 1


def test_a_read_cut_off_mid_way_is_read_again_on_a_new_connection(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path
) -> None:
    """CI, stop 26: a PostgreSQL restart as a read ran stopped the run (exit 3). A read changes nothing: it is
    sent once more on a new connection."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        before = ledger._conn.raw.info.backend_pid
        killer = _terminate_when_busy(pg_server.url(), ledger)
        assert ledger._conn.scalar("SELECT pg_sleep(0.3)::text || 'read'") == "read"
        killer.join()
        assert ledger._conn.raw.info.backend_pid != before, "the first connection was cut off"


def test_a_read_cut_off_twice_is_one_clear_error_and_the_next_call_connects_again(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path
) -> None:
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        killer = _terminate_when_busy(pg_server.url(), ledger, times=2)
        with pytest.raises(LedgerUnreachable, match="lost the connection to the PostgreSQL ledger") as lost:
            ledger._conn.scalar("SELECT pg_sleep(10)")
        killer.join()
        assert exit_code_for(lost.value) == EXIT_STOPPED  # it passes with time: the next start resumes
        assert ledger.total() == 1, "connected again"


@pytest.mark.parametrize("when", ["before", "commit"])
def test_a_write_cut_off_before_or_during_its_commit_and_rolled_back_is_written_once_more(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path, when: str
) -> None:
    """The write-ahead of a submit cut off as its UPDATE ran ('before': no COMMIT was sent), or as its COMMIT ran a
    deferred trigger ('commit': the new connection finds no mark of it): the server rolled it back, so writing it
    again on a new connection records it once."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        with _sleepy(pg_url, when):
            killer = _terminate_when_busy(pg_server.url(), ledger)
            attempt = ledger.mark_submitting(spec(1).key)
            killer.join()
        assert attempt is not None
        assert ledger.states_of([spec(1).key]) == {spec(1).key: JobState.SUBMITTING}
        assert [a.id for a in ledger.attempts(spec(1).key)] == [attempt], "one attempt: the first was rolled back"


class _CommitCutter:
    """A TCP relay to the server that, once armed, passes the next COMMIT on and drops its answer, then cuts the
    client off: the server committed, the client cannot know (an answer lost on the network). ``refuse``: no
    connection through it afterwards (no server to ask)."""

    def __init__(self, port: int) -> None:
        self.port, self.armed, self.refuse = port, False, False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url_port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        self.threads = [threading.Thread(target=self._accept)]
        self.threads[0].start()

    def __enter__(self) -> _CommitCutter:
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self.threads:
            thread.join(timeout=10)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.refuse:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.port))
            self.sockets.append(server)
            mute = threading.Event()
            for src, dst, upstream in ((client, server, True), (server, client, False)):
                self.threads.append(threading.Thread(target=self._pump, args=(src, dst, mute, upstream)))
                self.threads[-1].start()

    def _pump(self, src: socket.socket, dst: socket.socket, mute: threading.Event, upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                if upstream and self.armed and b"Q\x00\x00\x00\x0bCOMMIT\x00" in chunk:  # the simple query COMMIT
                    self.armed = False
                    mute.set()
                    dst.sendall(chunk)
                    time.sleep(0.5)  # the server commits; its answer is dropped below
                    src.shutdown(socket.SHUT_RDWR)
                    dst.shutdown(socket.SHUT_RDWR)
                    return
                if not (mute.is_set() and not upstream):
                    dst.sendall(chunk)
        for sock in (src, dst):  # one side closed (a server halted): the other sees it too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_a_write_whose_commit_answer_was_lost_but_committed_is_not_written_again(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path
) -> None:
    with _CommitCutter(pg_server.port) as relay, open_postgres_ledger(
            pg_url.replace(f":{pg_server.port}/", f":{relay.url_port}/"), tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        relay.armed = True
        attempt = ledger.mark_submitting(spec(1).key)
        assert attempt is not None and not relay.armed, "the COMMIT went through the relay"
        assert [a.id for a in ledger.attempts(spec(1).key)] == [attempt], "committed once, not written again"
        assert ledger.states_of([spec(1).key]) == {spec(1).key: JobState.SUBMITTING}


def test_a_write_whose_commit_cannot_be_known_raises_and_is_never_written_again(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The COMMIT's answer lost and no server to ask afterwards: what it did cannot be known, so the write is not
    repeated (exit 3; the next start resumes from what the ledger recorded — here the write-ahead, committed)."""
    monkeypatch.setattr(pg_connection, "RECONNECT_S", 0.5)
    with _CommitCutter(pg_server.port) as relay, open_postgres_ledger(
            pg_url.replace(f":{pg_server.port}/", f":{relay.url_port}/"), tmp_path) as ledger:
        ledger.register("m", "d", [spec(1)])
        relay.armed, relay.refuse = True, True
        with pytest.raises(LedgerUnreachable, match="committed if the server got the commit") as lost:
            ledger.mark_submitting(spec(1).key)
        assert not isinstance(lost.value, LedgerRolledBack) and exit_code_for(lost.value) == EXIT_STOPPED
    with open_postgres_ledger(pg_url, tmp_path) as direct:
        assert len(direct.attempts(spec(1).key)) == 1, "written once"


@pytest.mark.parametrize("write", ["mark_submitting", "mark_running"])
def test_a_write_lost_in_a_crash_during_its_commit_is_written_once_even_when_its_transaction_id_comes_back(
    tmp_path: Path, write: str
) -> None:
    """The review of the first version: after `pg_ctl stop -m immediate` the restarted server hands out again the
    transaction ids its crash lost; asked with `txid_status`, it answered for another runner's transaction —
    "committed" — so a lost write-ahead let the POST go with no record (paid twice) and a lost task id was
    neither recorded nor rescued. The write's mark, lost with it, says it was not committed: it is written once
    more."""
    with TempPostgres.start() as server:  # its own server: halting the session's would fail the other tests
        url = server.create_database("x")
        with _CommitCutter(server.port) as relay, open_postgres_ledger(
                url.replace(f":{server.port}/", f":{relay.url_port}/"), tmp_path / "state") as ledger:
            ledger.register("m", "d", [spec(1), spec(2)])
            key = spec(1).key
            attempt = ledger.mark_submitting(key) if write == "mark_running" else None
            result: list[object] = []

            def victim() -> None:
                if write == "mark_submitting":
                    result.append(ledger.mark_submitting(key))
                else:
                    assert attempt is not None
                    result.append(ledger.mark_running(key, attempt, task_id="task-PAID", http_status=200))

            with _sleepy(url, "commit"):
                thread = threading.Thread(target=victim)
                with psycopg.connect(url, autocommit=True) as admin:
                    thread.start()
                    deadline = time.monotonic() + 20
                    while admin.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = 'runner'"
                                        " AND wait_event = 'PgSleep'").fetchone() is None:
                        assert time.monotonic() < deadline, "the COMMIT never ran"
                        time.sleep(0.01)
                relay.refuse = True  # the victim reconnects only once another runner has written
                server.halt()  # -m immediate, as the victim's COMMIT runs its deferred trigger
                server.resume()
                with psycopg.connect(url, autocommit=True, application_name="other") as other:
                    for _ in range(5):  # another runner's commits: they take the lost transaction ids again
                        other.execute("SELECT txid_current()")
                relay.refuse = False
                thread.join(60)
        assert result and result[0] not in (None, False), result
        with open_postgres_ledger(url, tmp_path / "state") as direct:
            job = direct.get(key)
            assert job is not None
            if write == "mark_submitting":
                assert job.state is JobState.SUBMITTING and len(direct.attempts(key)) == 1
            else:
                assert job.state is JobState.RUNNING and job.task_id == "task-PAID"


def test_a_statement_timeout_is_a_plain_ledger_error_not_a_lost_connection(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        ledger._conn.raw.execute("SET statement_timeout = '50ms'")
        with pytest.raises(LedgerError, match="canceling statement due to statement timeout") as refused:
            ledger._conn.scalar("SELECT pg_sleep(1)")
        assert not isinstance(refused.value, LedgerUnreachable)
        assert "lost the connection" not in str(refused.value) + caplog.text


def test_a_run_record_cut_off_before_its_commit_is_written_once_more(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path
) -> None:
    """The review: the end of a run (its row in `runs`) cut off turned a finished run into exit 3."""
    with open_postgres_ledger(pg_url, tmp_path) as ledger:
        run_id = ledger.start_run(argv=["run"])
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("CREATE FUNCTION nap() RETURNS trigger LANGUAGE plpgsql AS $$"
                          " BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$")
            admin.execute("CREATE TRIGGER nap BEFORE UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION nap()")
        killer = _terminate_when_busy(pg_server.url(), ledger)
        ledger.finish_run(run_id, exit_code=0, counts={"done": 1})
        killer.join()
        assert [(run.id, run.exit_code) for run in ledger.runs()] == [(run_id, 0)]


def test_a_server_restarted_as_a_read_ran_is_waited_for_and_read_again(tmp_path: Path) -> None:
    """The CI failure itself: `pg_ctl stop -m immediate` while a statement runs, the server back a second later."""
    with TempPostgres.start() as server:  # under the system temp folder: the server's user cannot enter tmp_path
        url = server.create_database("r")
        with open_postgres_ledger(url, tmp_path / "state") as ledger:
            ledger.register("m", "d", [spec(1)])

            def restart() -> None:
                time.sleep(0.3)
                server.halt()
                time.sleep(1.0)
                server.resume()

            thread = threading.Thread(target=restart)
            thread.start()
            assert ledger._conn.scalar("SELECT pg_sleep(1)::text || 'read'") == "read"
            thread.join()
            assert ledger.total() == 1


def test_a_server_restarted_within_the_reconnect_window_is_waited_for(tmp_path: Path) -> None:
    """`pg_ctl stop -m immediate`, then a start a second later: the next ledger call waits for it and goes on."""
    with TempPostgres.start() as server:  # under the system temp folder: the server's user cannot enter tmp_path
        url = server.create_database("r")
        with open_postgres_ledger(url, tmp_path / "state") as ledger:
            ledger.register("m", "d", [spec(1)])
            server.halt()
            restart = threading.Timer(1.0, server.resume)
            restart.start()
            started = time.monotonic()
            assert ledger.mark_submitting(spec(1).key) is not None
            restart.join()
            assert time.monotonic() - started >= 0.9 and ledger.total() == 1


def test_a_server_down_past_the_reconnect_window_stops_the_call_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_connection, "RECONNECT_S", 0.5)
    with TempPostgres.start() as server:  # under the system temp folder: the server's user cannot enter tmp_path
        url = server.create_database("r")
        with open_postgres_ledger(url, tmp_path / "state") as ledger:
            ledger.register("m", "d", [spec(1)])
            server.halt()
            with pytest.raises(LedgerUnreachable, match=r"(?s)cannot connect to the PostgreSQL ledger .*tried for 0.5 s"):
                ledger.total()


def test_a_server_that_lost_commits_this_runner_saw_is_said_plainly_and_written_to_no_more(tmp_path: Path) -> None:
    """The multi-host hunt: a failover to a replica that lagged (asynchronous replication), or a restore from a
    backup, gives a server without the last commits a runner saw acknowledged — a write-ahead, a task id. The
    runner reconnected and went on: the job read pending again, and the next write-ahead sent it again (paid twice),
    silently. Now its connection, made again, finds its own last mark missing and stops with what it cannot know."""
    with TempPostgres.start() as server:  # its own server: its data directory is replaced below
        url = server.create_database("x")
        with open_postgres_ledger(url, tmp_path / "state") as ledger:
            ledger.register("m", "d", [spec(1)])
            key = spec(1).key
            server.halt("fast")
            replica = tmp_path / "replica"  # what the replica holds: everything up to here
            subprocess.run(["cp", "-a", str(server.data_dir), str(replica)], check=True)
            server.resume()
            attempt = ledger.mark_submitting(key)  # committed on the primary, acknowledged
            assert attempt is not None
            assert ledger.mark_running(key, attempt, task_id="task-PAID", http_status=200)
            server.halt()  # the primary dies; the replica, which had not received those commits, takes over
            shutil.rmtree(server.data_dir)
            subprocess.run(["cp", "-a", str(replica), str(server.data_dir)], check=True)
            server.resume()
            with pytest.raises(LedgerLostCommits, match="lost changes") as lost:
                ledger.get(key)  # the next statement, on a new connection
            assert exit_code_for(lost.value) == EXIT_USAGE  # not 3, a success to a timer: someone must look
            with pytest.raises(LedgerLostCommits):  # and no write goes to that server from this ledger
                ledger.mark_submitting(key)
        with open_postgres_ledger(url, tmp_path / "state", readonly=True) as after:
            job = after.get(key)
            assert job is not None and job.state is JobState.PENDING and job.attempts == 0  # what was lost stays lost


def test_a_ledger_used_after_its_close_is_not_a_server_that_lost_commits(tmp_path: Path, pg_url: str) -> None:
    """Review of the lost-commits check: close() deletes the connection's mark row, and a use after it (a bug, but
    one to be told as such) reconnected, found no row and said "the server lost changes … stop every runner"."""
    ledger = open_postgres_ledger(pg_url, tmp_path / "state")
    ledger.register("m", "d", [spec(1)])
    ledger.close()
    try:
        ledger.total()
    except LedgerError as exc:
        assert not isinstance(exc, LedgerLostCommits), exc
    finally:
        ledger._conn.close()  # the connection that use made (the ledger's own close() runs once)
