"""Task statuses that never settle: the poller says so and lets the run end, the task left running for the next run."""
from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from runner.jobs import JobState

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


async def test_a_status_that_stays_unknown_is_given_up_for_this_run(rig_factory: Callable[..., Rig],
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """TASK_STATUS_UNKNOWN at every poll (or a status this runner does not know: it reads as UNKNOWN) used to be
    polled every poll_interval for ever — 14,057 polls of 2 tasks in 6 virtual hours, the run never ending, not a
    line said. It is polled with the error backoff, given up after max_poll_errors in a row, and said; the job
    stays running and the next run, the provider answering again, collects it."""
    rig = rig_factory(p_status_unknown=1.0)
    rig.plan(make_jobs(2))
    with anyio.move_on_after(6 * 3600) as scope:
        await rig.engine().run()
    polls = rig.sim.stats()["polls"]
    assert not scope.cancelled_caught, f"still polling after 6 h: {polls} polls"
    assert polls <= 2 * 40
    assert rig.counts()[JobState.RUNNING] == 2 and rig.sim.stats()["accepted_total"] == 2
    assert any("TASK_STATUS_UNKNOWN" in r.getMessage() and "stays running" in r.getMessage() for r in caplog.records)
    rig.sim.configure(p_status_unknown=0.0)
    await rig.run()
    assert rig.counts()[JobState.DONE] == 2 and rig.sim.stats()["accepted_total"] == 2
