"""A manifest's spend across edits, estimates refreshed at planning, and orphans (issue 9, items 4-6)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.jobs import JobSpec, JobState
from runner.layout import orphan_path
from runner.ledger import SqliteLedger, open_ledger

MODEL = "kling-v3.0-pro-t2v"


def spec(i: int, *, prompt: str = "city", price: float = 0.56, output: str | None = None) -> JobSpec:
    return JobSpec.build(
        model=MODEL,
        request={"prompt": f"{prompt} {i}", "duration": 5, "sound": False},
        vars={"i": i},
        repeat=1,
        output=output or f"c{i}.mp4",
        estimated_usd=price,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with open_ledger(tmp_path / "state") as opened:
        yield opened


def submit(ledger: SqliteLedger, key: str) -> None:
    attempt = ledger.mark_submitting(key)
    ledger.mark_running(key, attempt, task_id=f"task-{key}", http_status=200)


def test_spend_counts_jobs_an_edit_dropped(ledger: SqliteLedger) -> None:
    """Spend of jobs the manifest no longer lists still counts for it (and is told apart)."""
    first = [spec(i) for i in range(2)]
    ledger.register("m", "d1", first)
    for job in first:
        submit(ledger, job.key)
    ledger.register("m", "d2", [spec(i, prompt="edited") for i in range(2)])
    assert ledger.spent_usd("m") == pytest.approx(1.12)
    assert ledger.dropped_spent_usd("m") == pytest.approx(1.12)
    # Listed again: it is no longer "dropped", and nothing is counted twice.
    ledger.register("m", "d3", [first[0], spec(0, prompt="edited", output="e0.mp4")])
    assert ledger.spent_usd("m") == pytest.approx(1.12)
    assert ledger.dropped_spent_usd("m") == pytest.approx(0.56)
    assert ledger.spent_usd("other") == 0


def test_estimates_of_unsubmitted_jobs_follow_the_price_of_the_last_plan(ledger: SqliteLedger) -> None:
    """Pending, failed and in-doubt jobs take the new estimate; a submitted job keeps its committed spend."""
    jobs = [spec(i, price=0.5) for i in range(4)]
    ledger.register("m", "d1", jobs)
    submit(ledger, jobs[0].key)  # running: committed 0.5
    attempt = ledger.mark_submitting(jobs[1].key)
    ledger.mark_in_doubt(jobs[1].key, attempt, http_status=None, reason="X", message="lost answer")
    ledger.register("m", "d2", [spec(i, price=1.5) for i in range(4)])
    running, in_doubt, pending = (ledger.get(job.key) for job in jobs[:3])
    assert running is not None and in_doubt is not None and pending is not None
    assert running.estimated_usd == 0.5 and running.spent_usd == 0.5
    assert in_doubt.estimated_usd == 1.5 and in_doubt.spent_usd == 0.5
    assert pending.estimated_usd == 1.5
    assert ledger.estimate_usd("m", [JobState.PENDING]) == pytest.approx(3.0)


def test_orphans_are_paid_jobs_no_manifest_lists(ledger: SqliteLedger) -> None:
    """A paid job dropped by its only manifest is an orphan of it, stored in that manifest's orphans folder."""
    jobs = [spec(i) for i in range(3)]
    ledger.register("m", "d1", jobs)
    ledger.register("n", "d1", [jobs[1]])
    for job in jobs:
        submit(ledger, job.key)
    ledger.register("m", "d2", [spec(9)])
    # jobs[1] is still listed by n: not an orphan; jobs[0] and jobs[2] are.
    assert ledger.orphans("m") == {JobState.RUNNING: 2}
    assert ledger.orphans("n") == {}
    assert orphan_path(ledger.orphan_home(jobs[0].key), jobs[0].key) == f"outputs/m/_orphans/{jobs[0].key}.mp4"
    assert ledger.targets_of(jobs[1].key)[0] == ("n", "c1.mp4")


def test_a_v1_ledger_is_migrated_with_its_targets_remembered(tmp_path: Path) -> None:
    """Upgrading a ledger made before the migration keeps every current target in the durable record."""
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        jobs = [spec(i) for i in range(2)]
        ledger.register("m", "d1", jobs)
        submit(ledger, jobs[0].key)
    raw = sqlite3.connect(state / "ledger.db")
    raw.executescript("DROP INDEX jobs_task; DROP INDEX attempts_task; DROP TABLE rejections; DROP INDEX jobs_review; ALTER TABLE jobs DROP COLUMN review;"
                     " ALTER TABLE jobs DROP COLUMN sample; DROP TABLE leases; DROP INDEX jobs_owner; ALTER TABLE jobs DROP COLUMN owner;"
                     " DROP TABLE targeted; DROP TABLE renames; DROP INDEX jobs_path; DROP TABLE meta; PRAGMA user_version = 1;")
    raw.close()
    (state / "ledger.mark").unlink()  # a runner of then made no commit mark either
    with open_ledger(state) as ledger:
        ledger.register("m", "d2", [spec(5)])
        assert ledger.spent_usd("m") == pytest.approx(0.56)
        assert ledger.orphans("m") == {JobState.RUNNING: 1}
