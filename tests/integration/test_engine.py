"""The engine against the in-process simulator: every job paid once, every video kept."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from runner.client import NovitaClient
from runner.engine import Engine, EngineConfig, StopReason
from runner.jobs import JobSpec, JobState, canonical_json
from runner.ledger import open_ledger
from runner.simulator import SimConfig, Simulator, sim_transport

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio

FAST = {"task_seconds": 0.05}


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def assert_paid_once(rig: Rig, jobs: list[JobSpec]) -> None:
    stats = rig.sim.stats()
    for job in jobs:
        assert stats["accepted_by_body"].get(body_hash(job.request), 0) <= 1, job.key


def assert_files_match_simulator(rig: Rig) -> int:
    stats = rig.sim.stats()
    checked = 0
    for job in rig.ledger.iter_jobs("t", states=[JobState.DONE]):
        assert job.path is not None and job.task_id is not None
        data = (rig.state / job.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == job.sha256 == stats["tasks"][job.task_id]["video_sha256"]
        checked += 1
    return checked


async def test_happy_path_stores_every_video_once(rig_factory: Callable[..., Rig]) -> None:
    """Every job is submitted once, polled to success and stored byte-identical to what was served."""
    rig = rig_factory()
    jobs = make_jobs(10)
    rig.plan(jobs)
    result = await rig.run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == 10
    assert rig.sim.stats()["accepted_total"] == 10
    assert assert_files_match_simulator(rig) == 10
    assert_paid_once(rig, jobs)


async def test_second_run_submits_nothing(rig_factory: Callable[..., Rig]) -> None:
    """A resumed run with everything done sends no POST at all."""
    rig = rig_factory()
    rig.plan(make_jobs(5))
    await rig.run()
    before = rig.sim.stats()["accepted_total"]
    await rig.run()
    assert rig.sim.stats()["accepted_total"] == before == 5


async def test_concurrency_counts_tasks_at_the_provider(rig_factory: Callable[..., Rig]) -> None:
    """Never more than `concurrency` tasks submitting or running at once."""
    rig = rig_factory(task_seconds=0.1)
    rig.plan(make_jobs(12))
    peak = 0
    original, original_many = rig.ledger.mark_submitting, rig.ledger.mark_submitting_many

    def spy(key: str, **kw: Any) -> int:
        nonlocal peak
        attempt = original(key, **kw)
        peak = max(peak, rig.ledger.outstanding())
        return attempt

    def spy_many(keys: Sequence[str]) -> list[int | None]:  # the write-aheads of the jobs ready at once
        nonlocal peak
        attempts = original_many(keys)
        peak = max(peak, rig.ledger.outstanding())
        return attempts

    rig.ledger.mark_submitting = spy  # type: ignore[method-assign]
    rig.ledger.mark_submitting_many = spy_many  # type: ignore[method-assign]
    await rig.run(concurrency=3)
    assert rig.counts()[JobState.DONE] == 12
    assert peak == 3


async def test_dropped_connection_is_held_in_doubt_not_resubmitted(rig_factory: Callable[..., Rig]) -> None:
    """A POST whose response never came is in doubt; neither this run nor the next pays again."""
    rig = rig_factory(p_drop=1.0)
    jobs = make_jobs(3)
    rig.plan(jobs)
    await rig.run()
    assert rig.counts()[JobState.IN_DOUBT] == 3
    assert rig.sim.stats()["accepted_total"] == 3  # the provider did create (and bill) them
    rig.sim.configure(p_drop=0.0)
    await rig.run()
    assert rig.sim.stats()["accepted_total"] == 3
    assert rig.counts()[JobState.IN_DOUBT] == 3


async def test_gateway_errors_are_in_doubt(rig_factory: Callable[..., Rig]) -> None:
    """A 502/504 page without the provider's envelope may hide a created task: in doubt."""
    rig = rig_factory(p_gateway=1.0)
    rig.plan(make_jobs(6))
    result = await rig.run(concurrency=1)
    # After 3 ambiguous answers in a row the run stops rather than pay for more tasks it cannot find.
    assert result.reason is StopReason.FATAL
    assert rig.counts()[JobState.IN_DOUBT] == 3
    assert rig.counts()[JobState.PENDING] == 3


async def test_rate_limit_storm_finishes_without_duplicates(rig_factory: Callable[..., Rig]) -> None:
    """429s (with and without Retry-After) delay submits but never double them."""
    rig = rig_factory(p_rate_limit=0.4, p_rate_limit_no_retry_after=0.3, retry_after=0.01, retry_after_header=True)
    jobs = make_jobs(8)
    rig.plan(jobs)
    result = await rig.run(rpm=6000)
    assert rig.counts()[JobState.DONE] == 8
    assert result.rate_limited > 0
    assert_paid_once(rig, jobs)


async def test_create_task_failed_is_retried(rig_factory: Callable[..., Rig]) -> None:
    """A 500 CREATE_TASK_FAILED envelope says nothing was created; the job is sent again."""
    rig = rig_factory(p_create_failed=0.5, seed=3)
    jobs = make_jobs(6)
    rig.plan(jobs)
    await rig.run()
    assert rig.counts()[JobState.DONE] == 6
    assert_paid_once(rig, jobs)


async def test_failed_task_records_reason_and_retries_only_when_asked(rig_factory: Callable[..., Rig]) -> None:
    """FAILED tasks end `failed` with the provider's reason; `retries: N` pays for at most N more tasks."""
    rig = rig_factory(p_task_failed=1.0)
    rig.plan(make_jobs(2))
    await rig.run()
    failed = list(rig.ledger.iter_jobs("t", states=[JobState.FAILED]))
    assert len(failed) == 2 and all(job.error or job.reason for job in failed)
    assert rig.sim.stats()["accepted_total"] == 2  # no retries unless the manifest asks
    rig.ledger.reset("t", JobState.FAILED)
    await rig.run(retries=2)  # one explicit retry, then up to 2 - 1 automatic ones per job
    assert rig.sim.stats()["accepted_total"] == 2 + 2 * 2
    assert rig.counts()[JobState.FAILED] == 2


async def test_expired_urls_and_truncated_downloads_recover(rig_factory: Callable[..., Rig]) -> None:
    """An expired URL is refreshed through task-result; a truncated download is fetched again."""
    rig = rig_factory(p_expired_url=0.5, p_truncated=0.4, seed=7)
    rig.plan(make_jobs(8))
    await rig.run()
    assert rig.counts()[JobState.DONE] == 8
    assert assert_files_match_simulator(rig) == 8


async def test_budget_stops_submitting(rig_factory: Callable[..., Rig]) -> None:
    """Estimated spend of everything submitted never passes the budget; the run says why it stopped."""
    rig = rig_factory()
    rig.plan(make_jobs(10))  # 0.56 USD each
    result = await rig.run(budget_usd=2.0)
    assert result.reason is StopReason.BUDGET
    assert rig.sim.stats()["accepted_total"] == 3
    assert rig.ledger.spent_usd("t") <= 2.0


async def test_a_budget_lowered_below_what_was_spent_says_so(rig_factory: Callable[..., Rig],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A budget lowered between runs below the spend already recorded: nothing is sent, and the line says the
    budget was passed before (operator sweep, 2026-12-05: "budget reached" with a next job read as this run's)."""
    rig = rig_factory()
    rig.plan(make_jobs(4))
    await rig.run(budget_usd=1.2)  # two jobs
    result = await rig.run(budget_usd=0.5)
    assert result.reason is StopReason.BUDGET and rig.sim.stats()["accepted_total"] == 2
    assert any("budget already passed: 1.12 USD" in record.getMessage() for record in caplog.records)


async def test_graceful_stop_records_posts_on_the_wire(rig_factory: Callable[..., Rig]) -> None:
    """A stop during slow POSTs lets them finish and be recorded: zero in doubt."""
    rig = rig_factory(p_slow=1.0, slow_seconds=0.3)
    rig.plan(make_jobs(6))
    engine = rig.engine(concurrency=3)

    async def stop_soon() -> None:
        await anyio.sleep(0.1)
        engine.request_stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_soon)
        result = await engine.run()
    assert result.reason is StopReason.SIGNAL
    counts = rig.counts()
    assert counts[JobState.IN_DOUBT] == 0 and counts[JobState.SUBMITTING] == 0
    assert counts[JobState.RUNNING] == 3 == rig.sim.stats()["accepted_total"]
    # The next run collects them without paying again.
    rig.sim.configure(p_slow=0.0)
    await rig.run(concurrency=3)
    assert rig.counts()[JobState.DONE] == 6
    assert rig.sim.stats()["accepted_total"] == 6


async def test_wrong_key_stops_the_run_and_keeps_jobs_pending(tmp_path: Path) -> None:
    """A 403 INVALID_API_KEY stops the run with an AuthError; no job fails or goes in doubt."""
    sim = Simulator(SimConfig(api_key="right", **FAST))
    async with httpx.AsyncClient(transport=sim_transport(sim)) as http:
        client = NovitaClient(http, base_url="http://sim.test", api_key="wrong")
        with open_ledger(tmp_path) as ledger:
            ledger.register("t", "d", make_jobs(3))
            engine = Engine(ledger, client, EngineConfig(manifest="t", rpm=None, poll_interval=0.02))
            result = await engine.run()
            assert result.reason is StopReason.FATAL
            assert type(result.error).__name__ == "AuthError"
            assert ledger.counts("t")[JobState.PENDING] == 3


async def test_submit_then_collect(rig_factory: Callable[..., Rig]) -> None:
    """`submit` fills the concurrency and exits; `collect` finishes them without submitting."""
    rig = rig_factory()
    rig.plan(make_jobs(6))
    result = await rig.run(collect=False, concurrency=4)
    assert result.reason is StopReason.SUBMITTED
    assert rig.counts()[JobState.RUNNING] == 4
    await rig.run(manifest=None, submit=False)
    counts = rig.counts()
    assert counts[JobState.DONE] == 4 and counts[JobState.PENDING] == 2
    assert rig.sim.stats()["accepted_total"] == 4


async def test_jobs_shared_by_two_manifests_are_paid_once(rig_factory: Callable[..., Rig]) -> None:
    """Two manifests asking for the same video share the job: one task, a file for each."""
    rig = rig_factory()
    jobs = make_jobs(2)
    rig.plan(jobs, "t")
    rig.plan([JobSpec.build(model=j.model, request=j.request, vars=j.vars, repeat=j.repeat,
                            output=f"other/{j.output}") for j in jobs], "u")
    await rig.run()
    await rig.run(manifest="u")
    assert rig.sim.stats()["accepted_total"] == 2
    for job in rig.ledger.iter_jobs("u"):
        assert job.state is JobState.DONE
        assert (rig.state / "outputs" / "u" / "other" / f"clip-{job.vars['i']}.mp4").exists()


async def test_manifest_planned_after_the_video_is_done_gets_its_file(rig_factory: Callable[..., Rig]) -> None:
    """A second manifest asking for an already stored video gets a copy without a new task."""
    from runner.engine import materialise_targets

    rig = rig_factory()
    jobs = make_jobs(2)
    rig.plan(jobs, "t")
    await rig.run()
    rig.plan([JobSpec.build(model=j.model, request=j.request, vars=j.vars, repeat=j.repeat,
                            output=f"late/{j.output}") for j in jobs], "u")
    assert materialise_targets(rig.ledger, "u") == 2
    await rig.run(manifest="u")
    assert rig.sim.stats()["accepted_total"] == 2
    for job in jobs:
        late = rig.state / "outputs" / "u" / "late" / job.output
        assert late.read_bytes() == (rig.state / "outputs" / "t" / job.output).read_bytes()


async def test_first_poll_learns_the_typical_task_time(rig_factory: Callable[..., Rig]) -> None:
    """After a few tasks, a new task is first polled just after the typical duration: about one poll per job."""
    rig = rig_factory(task_seconds=0.2)
    rig.plan(make_jobs(30))
    await rig.run(concurrency=4, poll_interval=0.02, poll_max_interval=1.0)
    assert rig.counts()[JobState.DONE] == 30
    # At the floor, each task would answer an eta rounded up to 1 s and need a second poll (>= 60).
    assert rig.sim.stats()["polls"] <= 42


@pytest.mark.parametrize("shared", [False, True])
async def test_a_manifest_registered_while_the_video_downloads_gets_its_file(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch, shared: bool,
) -> None:
    """On a shared ledger another runner may register a manifest asking for the same video while this one
    downloads it: the copy is placed by this run (its targets are read again after the record), not left
    for a later plan of that manifest. (On SQLite the ledger's lock keeps other runs out; the re-read is the
    shared ledger's.)"""
    from runner.client.novita import NovitaClient

    rig = rig_factory()
    jobs = make_jobs(1)
    rig.plan(jobs, "t")
    real = NovitaClient.download
    planned: list[str] = []

    async def download_while_another_plans(self: NovitaClient, *args: Any, **kwargs: Any) -> Any:
        if not planned:
            planned.append("u")
            rig.plan([JobSpec.build(model=j.model, request=j.request, vars=j.vars, repeat=j.repeat,
                                    output=f"late/{j.output}") for j in jobs], "u")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(NovitaClient, "download", download_while_another_plans)
    await rig.run(shared=shared)
    late = rig.state / "outputs" / "u" / "late" / jobs[0].output
    assert late.exists() is shared  # without sharing, `materialise_targets` at that manifest's plan places it
    assert rig.sim.stats()["accepted_total"] == 1
