"""The manifest edited while its run submits: no more submits (the edit may drop the very jobs the run would pay
for next); what was paid for is still collected, and the next run plans the edit (operator probe, 2026-12-04: a
run kept paying for six jobs its manifest no longer listed, ~1.51 USD, and said nothing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runner.engine import Engine, StopReason
from runner.jobs import JobState

from engine_rig import FAST_ENGINE, Rig, engine_config, guard, loop_wall, make_jobs

pytestmark = pytest.mark.anyio


async def test_an_edit_during_the_run_stops_its_submits_and_collects_what_was_paid(
    rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture,
) -> None:
    rig = rig_factory()
    rig.plan(make_jobs(10))

    def edited() -> str | None:  # the operator saves the manifest once two tasks are paid for
        return "manifests/m.yaml" if rig.sim.stats()["accepted_total"] >= 2 else None

    config = engine_config(manifest="t", concurrency=1, rpm=None, poll_rpm=None, edit_check_interval=0.0,
                           **FAST_ENGINE)
    engine = Engine(rig.ledger, rig.client, config, wall=loop_wall(), edited=edited)
    with guard(30):
        result = await engine.run()
    assert result.reason is StopReason.EDITED
    assert rig.sim.stats()["accepted_total"] == 2
    counts = rig.counts()
    assert counts[JobState.DONE] == 2 and counts[JobState.PENDING] == 8, counts
    assert any("manifests/m.yaml changed during this run" in r.getMessage() for r in caplog.records), caplog.text


async def test_no_edit_no_stop(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    rig.plan(make_jobs(3))
    config = engine_config(manifest="t", concurrency=2, rpm=None, poll_rpm=None, edit_check_interval=0.0,
                           **FAST_ENGINE)
    with guard(30):
        result = await Engine(rig.ledger, rig.client, config, wall=loop_wall(), edited=lambda: None).run()
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == 3


async def test_on_a_shared_ledger_an_edit_gives_back_the_pending_jobs_it_claimed(
    rig_factory: Callable[..., Rig],
) -> None:
    """The crash-window review: a runner that stopped submitting for an edit (or another runner's re-plan) kept its
    claims on pending jobs while it collected, so the other runners could not send them until it ended."""
    rig = rig_factory()
    rig.plan(make_jobs(10))
    released: list[str] = []
    real = rig.ledger.release_claims

    def release(owner: str) -> int:
        released.append(owner)
        return real(owner)

    rig.ledger.release_claims = release  # type: ignore[method-assign]

    def edited() -> str | None:
        return "manifests/m.yaml" if rig.sim.stats()["accepted_total"] >= 2 else None

    config = engine_config(manifest="t", concurrency=1, rpm=None, poll_rpm=None, edit_check_interval=0.0,
                           shared=True, **FAST_ENGINE)
    with guard(30):
        result = await Engine(rig.ledger, rig.client, config, wall=loop_wall(), edited=edited).run()
    assert result.reason is StopReason.EDITED
    assert rig.ledger.owner in released
