"""An in-doubt job's concurrency slot on a PostgreSQL ledger whose server's clock steps (``runner/ledger/postgres/holds.py``).

The hold (``RUNNER_IN_DOUBT_HOLD``) keeps an in-doubt job's slot while the task its POST may have created may still run,
so the runners together stay within ``concurrency`` at the provider; it never decides a resubmit (only the operator moves
an in-doubt job). It was ``submitted_at > now - hold`` on the ledger's clock, the server's, which follows a step of the
server's clock at the next lease renewal: stepped ahead a day, the slot went to a new POST at once; set back a day, it
was held a day more. The server's clock here is its real one plus a step the test sets: the connection's search_path
finds the schema ``fake``'s ``clock_timestamp()`` before ``pg_catalog``'s, as the ledger's every read of the server's
time does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from runner.jobs import JobSpec
from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.postgres.holds import DoubtHolds
from runner.ledger.postgres.ledger import PostgresLedger

DAY = 86400.0
HOLD = 900.0


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


class Steady:
    """This host's steady clock (CLOCK_BOOTTIME), moved by the test: no step of any wall clock moves it."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Server:
    """The server's clock: its own plus ``step`` seconds, read by every unqualified ``clock_timestamp()``."""

    def __init__(self, url: str) -> None:
        self.admin = psycopg.connect(url, autocommit=True)
        self.admin.execute("CREATE SCHEMA fake")
        self.admin.execute("CREATE TABLE fake.step (seconds float8 NOT NULL)")
        self.admin.execute("INSERT INTO fake.step VALUES (0)")
        self.admin.execute(
            "CREATE FUNCTION fake.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE AS"
            " $$ SELECT pg_catalog.clock_timestamp() + make_interval(secs => (SELECT seconds FROM fake.step)) $$")
        self.url = f"{url}?options=-csearch_path%3Dpublic%2Cfake%2Cpg_catalog"

    def step(self, seconds: float) -> None:
        self.admin.execute("UPDATE fake.step SET seconds = seconds + %s", (seconds,))

    def time(self) -> float:
        return float(self.admin.execute("SELECT extract(epoch FROM fake.clock_timestamp())::float8").fetchone()[0])


@pytest.fixture
def server(pg_url: str) -> Iterator[Server]:
    fake = Server(pg_url)
    try:
        yield fake
    finally:
        fake.admin.close()


def _runner(server: Server, tmp_path: Path, steady: Steady, name: str = "a") -> PostgresLedger:
    """A runner's ledger on the server's clock (the default), its holds on ``steady``."""
    return open_postgres_ledger(server.url, tmp_path / name, holds=DoubtHolds(steady))


def _in_doubt(ledger: PostgresLedger) -> None:
    """Job 1 sent and its answer lost: in doubt; it holds the only slot."""
    ledger.register("m", "d", [spec(1), spec(2)])
    attempt = ledger.mark_submitting(spec(1).key, max_outstanding=1, in_doubt_hold_s=HOLD)
    assert attempt is not None
    assert ledger.mark_in_doubt(spec(1).key, attempt, http_status=None, reason="READ_TIMEOUT", message="no answer")
    assert ledger.outstanding(in_doubt_hold_s=HOLD) == 1


def test_the_server_s_clock_stepped_ahead_a_day_does_not_end_an_in_doubt_job_s_hold(
        server: Server, tmp_path: Path) -> None:
    """Stepped ahead, the hold ended at the next renewal and job 2 was written ahead on the slot of a task that may still
    run (two at the provider with concurrency 1). The hold runs on this host's steady clock once counted."""
    steady = Steady()
    with _runner(server, tmp_path, steady) as ledger:
        _in_doubt(ledger)
        # A lease the step does not end (the default TTL's would read expired, and the run stop: another matter).
        assert ledger.renew_lease(ledger.owner, ttl=3 * DAY)
        before = server.time()
        server.step(DAY)
        assert ledger.renew_lease(ledger.owner, ttl=3 * DAY)  # the ledger's clock follows the server's
        assert server.time() - before > DAY - 60  # the step is seen
        assert ledger.outstanding(in_doubt_hold_s=HOLD) == 1
        assert ledger.mark_submitting(spec(2).key, max_outstanding=1, in_doubt_hold_s=HOLD) is None
        steady.now += HOLD - 1
        assert ledger.mark_submitting(spec(2).key, max_outstanding=1, in_doubt_hold_s=HOLD) is None
        steady.now += 2  # the hold has run out on the steady clock: the slot is free
        assert ledger.mark_submitting(spec(2).key, max_outstanding=1, in_doubt_hold_s=HOLD) is not None


def test_the_server_s_clock_set_back_a_day_holds_an_in_doubt_job_s_slot_for_the_hold_only(
        server: Server, tmp_path: Path) -> None:
    """Set back, the job's submit time lay a day ahead of the server's clock and its slot was held a day and the hold.
    Counted before the step, or first counted after it by another runner, it is held for the hold at most."""
    steady, other = Steady(), Steady()
    with _runner(server, tmp_path, steady) as ledger:
        _in_doubt(ledger)
        server.step(-DAY)
        assert ledger.renew_lease(ledger.owner)
        with _runner(server, tmp_path, other, "b") as late:  # a runner that first counts the job after the step
            assert late.outstanding(in_doubt_hold_s=HOLD) == 1
            assert ledger.outstanding(in_doubt_hold_s=HOLD) == 1
            steady.now += HOLD + 1
            other.now += HOLD + 1
            assert ledger.outstanding(in_doubt_hold_s=HOLD) == 0
            assert late.outstanding(in_doubt_hold_s=HOLD) == 0
            assert late.mark_submitting(spec(2).key, max_outstanding=1, in_doubt_hold_s=HOLD) is not None


def test_an_in_doubt_job_s_hold_ends_with_the_server_s_clock_left_alone(server: Server, tmp_path: Path) -> None:
    """No step: a job first counted part-way through its hold is held for what is left of it, not a whole hold more."""
    steady = Steady()
    with _runner(server, tmp_path, steady) as ledger:
        _in_doubt(ledger)
    server.step(HOLD / 2)  # half the hold later, by every clock (the runner that sent it has gone)
    with _runner(server, tmp_path, steady, "b") as late:
        assert late.outstanding(in_doubt_hold_s=HOLD) == 1
        steady.now += HOLD / 2 + 5
        assert late.outstanding(in_doubt_hold_s=HOLD) == 0
