"""A write-ahead the ledger cannot commit (a full disk): its jobs are never sent (OS sweep, 2026-12-05)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from runner.errors import DiskError, LedgerDiskError
from runner.jobs import JobState
from runner.service.outcome import EXIT_LOCAL, exit_code_for

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


async def test_a_write_ahead_the_disk_refuses_sends_nothing_of_its_group(rig_factory: Callable[..., Rig]) -> None:
    """The first wave's write-aheads commit; the next wave's fails (SQLite FULL, as a full disk gives): the first
    wave's POSTs are answered and recorded, not one POST of the failed wave leaves, its jobs stay pending, and the
    run ends as a disk error (exit 6)."""
    rig = rig_factory(task_seconds=0.5)
    rig.plan(make_jobs(6))
    real = rig.ledger.mark_submitting_many
    waves: list[int] = []

    def full_after_the_first_wave(keys: Sequence[str]) -> list[int | None]:
        waves.append(len(keys))
        if len(waves) > 1:
            raise LedgerDiskError("disk full while writing ledger.db; nothing recorded was lost")
        return real(keys)

    rig.ledger.mark_submitting_many = full_after_the_first_wave  # type: ignore[method-assign]
    with pytest.raises(DiskError) as raised:
        await rig.run(concurrency=3)
    assert exit_code_for(raised.value) == EXIT_LOCAL
    assert len(waves) >= 2 and waves[0] >= 2, waves
    counts = rig.counts()
    sent = rig.sim.stats()["accepted_total"]
    assert sent == waves[0], f"{sent} POSTs for {waves[0]} write-ahead(s) committed"
    assert counts[JobState.SUBMITTING] == 0 and counts[JobState.IN_DOUBT] == 0, counts
    assert counts[JobState.PENDING] == 6 - waves[0], counts
