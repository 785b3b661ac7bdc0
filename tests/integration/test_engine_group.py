"""Grouped write-aheads (issue 14: CPU per job, loop time blocked per job): when several slots are free at
once, the submit lane commits the write-aheads of every job ready now in ONE durable transaction, then
starts their POSTs. The money path stays as strict: each job's write-ahead is committed before a byte of
its POST leaves, the budget holds for the whole group, the task id is still one durable commit a job."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from runner.client import NovitaClient, SubmitResult
from runner.engine import StopReason
from runner.jobs import JobState

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


def _count_durable_commits(rig: Rig) -> dict[str, int]:
    """Trace the ledger's connection: COMMITs while ``synchronous`` is FULL (each one an fsync), and all."""
    seen = {"durable": 0, "commits": 0}
    level = ["NORMAL"]

    def trace(sql: str) -> None:
        words = sql.split()
        head = words[0].upper() if words else ""
        if head == "PRAGMA" and words[1].lower().startswith("synchronous="):
            level[0] = words[1].split("=", 1)[1].upper()
        elif head == "COMMIT":
            seen["commits"] += 1
            seen["durable"] += level[0] == "FULL"

    rig.ledger._conn.db.conn.set_trace_callback(trace)
    return seen


async def test_the_first_wave_writes_ahead_in_one_durable_commit(rig_factory: Callable[..., Rig]) -> None:
    """40 jobs, 40 slots: one durable commit for the 40 write-aheads, then one per accepted task id (before: 80)."""
    rig = rig_factory()
    jobs = 40
    rig.plan(make_jobs(jobs))
    seen = _count_durable_commits(rig)
    result = await rig.run(concurrency=jobs)
    rig.ledger._conn.db.conn.set_trace_callback(None)
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == jobs
    assert rig.sim.stats()["accepted_total"] == jobs
    assert seen["durable"] == jobs + 1, seen


@pytest.mark.real_time
async def test_a_wave_that_frees_several_slots_is_grouped_too(rig_factory: Callable[..., Rig]) -> None:
    """Tasks that end together free their slots together (asyncio, loopback-fast tasks submitted in waves): past
    the first wave, write-aheads still go in groups when several slots are free by the time the lane looks."""
    rig = rig_factory()
    jobs, concurrency = 40, 10
    rig.plan(make_jobs(jobs))
    sizes: list[int] = []
    original = rig.ledger.mark_submitting_many

    def spy(keys: Sequence[str]) -> list[int | None]:
        sizes.append(len(keys))
        return original(keys)

    rig.ledger.mark_submitting_many = spy  # type: ignore[method-assign]
    result = await rig.run(concurrency=concurrency)
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == jobs
    assert sum(sizes) == jobs and sizes[0] == concurrency, sizes
    assert max(sizes[1:]) > 1, sizes  # before: a write-ahead (and its fsync) a job


async def test_every_post_leaves_after_its_write_ahead_is_committed(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the instant each POST starts, another connection to the ledger file (it sees committed data only)
    reads the job as ``submitting`` with an open attempt: the write-ahead is durable before a byte leaves."""
    rig = rig_factory()
    specs = make_jobs(24)
    rig.plan(specs)
    key_of = {spec.request["prompt"]: spec.key for spec in specs}
    reader = sqlite3.connect(f"file:{rig.ledger.path}?mode=ro", uri=True)
    seen: list[str] = []
    real = NovitaClient.submit

    async def checked(self: NovitaClient, model: str, body: dict[str, Any]) -> SubmitResult:
        key = key_of[body["prompt"]]
        row = reader.execute("SELECT state FROM jobs WHERE key = ?", (key,)).fetchone()
        opened = reader.execute("SELECT count(*) FROM attempts WHERE key = ? AND kind = 'submit' AND ended_at IS NULL",
                                (key,)).fetchone()[0]
        seen.append(f"{row[0]}:{opened}")
        return await real(self, model, body)

    monkeypatch.setattr(NovitaClient, "submit", checked)
    try:
        result = await rig.run(concurrency=8)
    finally:
        reader.close()
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == 24
    assert seen == ["submitting:1"] * 24, seen


async def test_the_budget_holds_for_the_whole_group(rig_factory: Callable[..., Rig]) -> None:
    """Ten slots free at once and a budget for four and a half jobs: four write-aheads in the group, the fifth
    job never written ahead nor sent; the run stops at the budget, collecting the four."""
    rig = rig_factory()
    rig.plan(make_jobs(10))
    result = await rig.run(concurrency=10, budget_usd=4.5 * 0.56)
    assert result.reason is StopReason.BUDGET
    assert rig.sim.stats()["accepted_total"] == 4
    assert rig.counts()[JobState.DONE] == 4 and rig.counts()[JobState.PENDING] == 6
    assert rig.ledger.spent_usd("t") == pytest.approx(4 * 0.56)


async def test_a_paced_submit_rate_is_not_grouped_past_the_limiter(rig_factory: Callable[..., Rig]) -> None:
    """--rpm 60 and eight free slots: the limiter admits one job a second, so no job joins a group early; the
    provider sees the POSTs a second apart (the limiter's pace), never a burst."""
    rig = rig_factory(task_seconds=600.0)
    rig.plan(make_jobs(8))
    result = await rig.run(concurrency=8, rpm=60, max_runtime=30.0)
    assert result.reason is StopReason.MAX_RUNTIME
    times = sorted(rig.sim.task(task_id).submitted_at for task_id in rig.sim.task_ids())
    assert len(times) == 8
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.99, times


async def test_a_job_of_the_group_no_longer_pending_leaves_its_share_of_the_budget(
    rig_factory: Callable[..., Rig],
) -> None:
    """A budget for four and a half jobs, ten slots free: the group is four jobs, the fifth over the budget. One of
    the four is no longer pending when the group's write-ahead runs (another process failed it): nothing is written
    or paid for it, so its estimate is not spent and the fifth job still fits. Before, the group's count still held
    it and the run stopped at the budget with three jobs paid of the four it allows."""
    rig = rig_factory()
    rig.plan(make_jobs(10))
    real = rig.ledger.mark_submitting_many
    taken: list[str] = []

    def one_taken_elsewhere(keys: Sequence[str]) -> Any:
        if not taken and len(keys) > 1:
            taken.append(keys[1])
            assert rig.ledger.fail_unsent(keys[1], reason="failed by another process")
        return real(keys)

    rig.ledger.mark_submitting_many = one_taken_elsewhere  # type: ignore[method-assign]
    result = await rig.run(concurrency=10, budget_usd=4.5 * 0.56)
    assert taken
    assert result.reason is StopReason.BUDGET
    assert rig.sim.stats()["accepted_total"] == 4
    counts = rig.counts()
    assert counts[JobState.DONE] == 4 and counts[JobState.FAILED] == 1 and counts[JobState.PENDING] == 5
    assert rig.ledger.spent_usd("t") == pytest.approx(4 * 0.56)
