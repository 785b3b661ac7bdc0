"""The engine on a shared PostgreSQL ledger, in process: two ledgers on one database are two runners."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trio

from runner.engine import StopReason
from runner.engine.gate import SharedGate
from runner.jobs import JobState
from runner.ledger import JobRecord
from runner.ledger.postgres import open_postgres_ledger
from runner.simulator import sim_transport
from tests.integration.engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


async def test_a_live_runner_s_succeeded_job_is_waited_for_and_not_downloaded_by_another(
        rig_factory: Callable[..., Rig], pg_url: str, tmp_path: Path) -> None:
    rig = rig_factory(memory=True)
    other = open_postgres_ledger(pg_url, tmp_path / "state")  # a live runner: its lease runs
    mine = open_postgres_ledger(pg_url, tmp_path / "state")
    try:
        job = make_jobs(1)[0]
        other.register("t", "d", [job])
        attempt = other.mark_submitting(job.key)
        assert attempt is not None
        other.mark_running(job.key, attempt, task_id="task-of-other", http_status=200)
        other.mark_succeeded(job.key, video_url="http://sim.test/nowhere.mp4", url_expires_at=None, debug={})
        rig.ledger.close()
        rig.ledger = mine  # type: ignore[assignment]
        options: dict[str, Any] = {"shared": True, "lease_ttl_s": 1.0}
        finished: list[float] = []

        async def the_other_stores_its_video() -> None:
            await anyio.sleep(1.0)  # meanwhile this run waits: the other's result may yet come to it
            other.renew_lease(other.owner, ttl=60)
            other.mark_done(job.key, path="outputs/t/clip-0.mp4", sha256="s", bytes=1)
            finished.append(time.monotonic())

        async with anyio.create_task_group() as tg:
            tg.start_soon(the_other_stores_its_video)
            result = await rig.run(timeout=20, **options)
            ended = time.monotonic()
        assert result.done == 0 and result.lost == 0
        assert finished and ended >= finished[0]  # it did not end while the live runner's result was not stored
        kinds = [a.kind for a in mine.attempts(job.key)]
        assert "download" not in kinds and kinds == ["submit"], kinds
        assert mine.get(job.key).state is JobState.DONE  # type: ignore[union-attr]
    finally:
        other.close()


async def test_a_runner_waiting_for_a_slot_others_hold_idles_cheaply(
        rig_factory: Callable[..., Rig], pg_url: str, tmp_path: Path) -> None:
    """Every slot is held by another live runner's tasks: this runner, holding nothing in flight, looks
    for a slot at a growing interval (0.5 s doubled up to ``shared_idle_max_s``): a few statements a second
    at first, under one a second once settled — not the ~10 a second of a write-ahead retried every 0.5 s."""
    rig = rig_factory(memory=True)
    other = open_postgres_ledger(pg_url, tmp_path / "state")
    mine = open_postgres_ledger(pg_url, tmp_path / "state")
    try:
        jobs = make_jobs(4)
        other.register("t", "d", jobs)
        for job in jobs[:2]:  # the other runner's tasks fill concurrency 2
            attempt = other.mark_submitting(job.key)
            assert attempt is not None
            other.mark_running(job.key, attempt, task_id=f"task-{job.key}", http_status=200)
        rig.ledger.close()
        rig.ledger = mine  # type: ignore[assignment]
        engine = rig.engine(shared=True, concurrency=2, lease_ttl_s=20.0)
        counted: list[int] = []

        async def measure() -> None:
            await anyio.sleep(1.0)  # past the first refused write-ahead
            start = mine._conn.statements
            await anyio.sleep(5.0)
            counted.append(mine._conn.statements - start)
            engine.request_stop()

        async with anyio.create_task_group() as tg:
            tg.start_soon(measure)
            with anyio.fail_after(30):
                await engine.run()
        assert rig.sim.stats()["accepted_total"] == 0  # nothing submitted: no slot ever freed
        assert counted and counted[0] <= 10, counted  # 5 s idle: ≤ 2 statements a second (a lease renewal included)
    finally:
        other.close()


async def test_a_runner_whose_folder_cannot_take_videos_stops_submitting_and_gives_its_claims_back(
        rig_factory: Callable[..., Rig], pg_url: str, tmp_path: Path) -> None:
    """On a shared ledger each host stores in its own state directory: one whose folder cannot take a file is
    this host's problem, so this runner stops submitting and gives its claims back at once, for runners on other
    hosts to send the jobs (instead of holding them claimed while it collects)."""
    rig = rig_factory(memory=True)
    mine = open_postgres_ledger(pg_url, tmp_path / "state")
    other = open_postgres_ledger(pg_url, tmp_path / "other-host")
    try:
        mine.register("t", "d", make_jobs(3))
        (tmp_path / "state" / "outputs").mkdir(parents=True)
        (tmp_path / "state" / "outputs" / "t").write_text("a file where this host's folder should be")
        rig.ledger.close()
        rig.ledger = mine  # type: ignore[assignment]
        result = await rig.run(timeout=20, shared=True, lease_ttl_s=20.0)
        assert result.reason is StopReason.UNSTORABLE and result.error is not None, result
        assert "Not a directory" in str(result.error) and rig.sim.stats()["accepted_total"] == 0
        assert len(other.claim_pending(3, other.owner, manifest="t")) == 3  # nothing left claimed by this runner
    finally:
        other.close()


def _stopped_after_write_ahead(monkeypatch: pytest.MonkeyPatch, for_s: float, shift: list[float],
                               meanwhile: Callable[[str], None] = lambda key: None) -> None:
    """The runner stops (SIGSTOP, a frozen VM) for ``for_s`` right after its first write-ahead committed, before its POST
    left: its clocks go on (the engine's virtual clock jumps, its ledger's clock moves ``shift`` on), and ``meanwhile``
    runs as if on another host."""
    real = SharedGate.write_ahead
    paused: list[str] = []

    def write_ahead(gate: SharedGate, job: JobRecord) -> int | None:
        attempt = real(gate, job)
        if attempt is not None and not paused:
            paused.append(job.key)
            trio.lowlevel.current_clock().jump(for_s)  # type: ignore[attr-defined]  # trio's MockClock
            shift[0] += for_s
            meanwhile(job.key)
        return attempt

    monkeypatch.setattr(SharedGate, "write_ahead", write_ahead)


class _Tracing(httpx.AsyncBaseTransport):
    """The simulator behind a transport that calls a request's trace as its headers are about to go, as the runner's
    own does once it has a connection; ``stop`` runs just before, on the first POST: the process stopped while it
    waited for a connection or connected, after every check the submit lane makes itself."""

    def __init__(self, inner: httpx.AsyncBaseTransport, stop: Callable[[], None]) -> None:
        self.inner, self.stop, self.stopped = inner, stop, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and not self.stopped:
            self.stopped = True
            self.stop()
        trace = request.extensions.get("trace")
        if trace is not None:
            await trace("http11.send_request_headers.started", {"request": request})
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("where", ["after the write-ahead", "as the first byte goes"])
async def test_a_runner_stopped_past_its_lease_before_its_post_sends_nothing_once_taken_over(
        rig_factory: Callable[..., Rig], pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, where: str) -> None:
    """The multi-host hunt: runner A stopped for an hour between a job's write-ahead and its POST. Runner B took A's
    expired work over (the job in doubt); the operator, finding no task at the provider (none was sent), retried it, and
    B wrote it ahead to send it. A, woken, sent its POST all the same: the job paid twice (A's answer then only reached
    the rescue journal). A POST leaves only while the lease it was written ahead under may still hold — asked before
    the POST, and again by the client as its first byte goes (review: a wait for a connection, a connect or a
    stalled loop came after the first look)."""
    shift = [0.0]
    mine = open_postgres_ledger(pg_url, tmp_path / "state", clock=lambda: time.time() + shift[0])
    later = open_postgres_ledger(pg_url, tmp_path / "state", clock=lambda: time.time() + 3600)  # B, an hour on
    b_attempts: list[int | None] = []

    def taken_over_and_retried(key: str) -> None:
        assert later.recover_expired(later.owner) == 1  # A's lease expired: its submit is held in doubt
        assert later.reset("t", JobState.IN_DOUBT, [key]) == 1  # `runner retry t --in-doubt KEY`
        b_attempts.append(later.mark_submitting(key))  # B's write-ahead: B's POST pays for the job

    job = make_jobs(1)[0]

    def stop_while_connecting() -> None:
        trio.lowlevel.current_clock().jump(3600.0)  # type: ignore[attr-defined]  # trio's MockClock
        shift[0] += 3600.0
        taken_over_and_retried(job.key)

    if where == "after the write-ahead":
        rig = rig_factory(memory=True)
        _stopped_after_write_ahead(monkeypatch, 3600.0, shift, taken_over_and_retried)
    else:
        sim = rig_factory(memory=True).sim
        rig = rig_factory(memory=True, transport=_Tracing(sim_transport(sim), stop_while_connecting),
                          state=tmp_path / "a")
        rig.sim = sim
    try:
        mine.register("t", "d", [job])
        rig.ledger.close()
        rig.ledger = mine  # type: ignore[assignment]
        result = await rig.run(timeout=30, shared=True, lease_ttl_s=60.0, record_retry_delays=(0.01,))
        assert rig.sim.stats()["accepted_total"] == 0  # A sent nothing: B's POST is the job's only one
        assert b_attempts and b_attempts[0] is not None
        now = later.get(job.key)
        assert now is not None and now.state is JobState.SUBMITTING and now.owner == later.owner, now
        assert result.error is not None, result  # the run stopped (this, or its lease found expired)
        assert "its POST was not sent" in caplog.text, caplog.text
    finally:
        later.close()


async def test_a_runner_stopped_near_its_lease_end_before_its_post_sends_it_once_the_lease_is_renewed(
        rig_factory: Callable[..., Rig], pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop past 3/4 of the lease, not past it, and no other runner: the job waits for the lease to be renewed, then
    goes; paid once, stored, the run not stopped."""
    rig = rig_factory(memory=True)
    shift = [0.0]
    mine = open_postgres_ledger(pg_url, tmp_path / "state", clock=lambda: time.time() + shift[0])
    jobs = make_jobs(2)
    mine.register("t", "d", jobs)
    rig.ledger.close()
    rig.ledger = mine  # type: ignore[assignment]
    _stopped_after_write_ahead(monkeypatch, 50.0, shift)
    result = await rig.run(timeout=60, shared=True, lease_ttl_s=60.0)
    assert result.error is None and rig.counts()[JobState.DONE] == 2, (result, rig.counts())
    assert rig.sim.stats()["accepted_total"] == 2
    # At most one POST held back (none when the keeper renewed first), and nothing more written ahead under the stale
    # lease (the next job's write-ahead would be given back too: a write-ahead and a refusal for nothing).
    held = [a for job in jobs for a in mine.attempts(job.key) if a.kind == "submit" and a.outcome == "refused"]
    assert len(held) <= 1, held


class _RefuseFirst(httpx.AsyncBaseTransport):
    """The simulator, except that the first POST is refused 500 CREATE_TASK_FAILED (nothing created); every POST's
    body is kept, in order."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.bodies = inner, list[bytes]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.bodies.append(await request.aread())
            if len(self.bodies) == 1:
                return httpx.Response(500, json={"code": 500, "reason": "CREATE_TASK_FAILED", "message": "try later"})
        return await self.inner.handle_async_request(request)


async def test_a_refused_job_waits_its_backoff_on_a_shared_ledger_and_the_next_goes_meanwhile(
        rig_factory: Callable[..., Rig], pg_url: str, tmp_path: Path) -> None:
    """Review of the refusal streak: a refused job is pending with no owner again, the first a claim takes, so on a
    shared ledger it was written ahead and sent again at once — its backoff never applied (the provider asked at the
    rate limit for the whole streak). It waits for its retry now, and the next job goes meanwhile."""
    sim = rig_factory(memory=True).sim
    transport = _RefuseFirst(sim_transport(sim))
    rig = rig_factory(memory=True, transport=transport, state=tmp_path / "a")
    rig.sim = sim
    mine = open_postgres_ledger(pg_url, tmp_path / "state")
    mine.register("t", "d", make_jobs(2))
    rig.ledger.close()
    rig.ledger = mine  # type: ignore[assignment]
    result = await rig.run(timeout=60, shared=True, concurrency=1)
    assert result.error is None and rig.counts()[JobState.DONE] == 2, (result, rig.counts())
    first, second, third = transport.bodies
    assert second != first and third == first  # the refused job went again after the other, not at once
