"""The engine on the in-memory ledger backend: the same lanes, no SQLite (engine unit tests can use it)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from runner.engine import StopReason
from runner.jobs import JobState, canonical_json
from runner.ledger import MemoryLedger

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


def assert_paid_once(rig: Rig) -> None:
    assert all(n == 1 for n in rig.sim.stats()["accepted_by_body"].values())


def assert_files_match_simulator(rig: Rig) -> int:
    stats = rig.sim.stats()
    checked = 0
    for job in rig.ledger.iter_jobs("t", states=[JobState.DONE]):
        assert job.path is not None and job.task_id is not None
        data = (rig.state / job.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == job.sha256 == stats["tasks"][job.task_id]["video_sha256"]
        assert stats["accepted_by_body"][hashlib.sha256(canonical_json(job.request).encode()).hexdigest()] == 1
        checked += 1
    return checked


async def test_memory_backend_runs_a_batch_to_the_end(rig_factory: Callable[..., Rig]) -> None:
    """Every job submitted once, polled, stored byte-identical; a second run sends nothing."""
    rig = rig_factory(memory=True)
    assert isinstance(rig.ledger, MemoryLedger)
    jobs = make_jobs(8)
    rig.plan(jobs)
    result = await rig.run()
    assert result.reason is StopReason.COMPLETE
    assert rig.counts()[JobState.DONE] == 8
    assert assert_files_match_simulator(rig) == 8
    assert_paid_once(rig)
    await rig.run()
    assert rig.sim.stats()["accepted_total"] == 8


async def test_memory_backend_holds_ambiguous_submits_in_doubt(rig_factory: Callable[..., Rig]) -> None:
    """A POST whose answer never came is in doubt and never resubmitted, on this backend too."""
    rig = rig_factory(memory=True, p_drop=1.0)
    rig.plan(make_jobs(3))
    await rig.run()
    assert rig.counts()[JobState.IN_DOUBT] == 3
    rig.sim.configure(p_drop=0.0)
    await rig.run()
    assert rig.sim.stats()["accepted_total"] == 3
    assert rig.counts()[JobState.IN_DOUBT] == 3


async def test_jobs_another_live_owner_claimed_are_not_submitted(rig_factory: Callable[..., Rig]) -> None:
    """A job claimed by another runner whose lease is live is left to it: nothing is sent for it."""
    rig = rig_factory(memory=True)
    rig.plan(make_jobs(4))
    assert rig.ledger.renew_lease("other-host", ttl=3600)
    claimed = {job.key for job in rig.ledger.claim_pending(2, "other-host")}
    await rig.run()
    assert rig.sim.stats()["accepted_total"] == 2
    assert {job.key for job in rig.ledger.iter_jobs("t", states=[JobState.PENDING])} == claimed
    assert rig.counts()[JobState.DONE] == 2
