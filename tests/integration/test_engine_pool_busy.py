"""A submit that waited out the pool timeout for one of this process's own connections is no unreachable provider.

Review of the limits sweep, 2026-12-05: under an open-file limit lower than the run needs, ``runner.service.open_files``
fits the HTTP pool smaller than the concurrency, and submits wait for a connection instead. A wait longer than the
pool timeout raises ``httpx.PoolTimeout`` (nothing sent), which counted as a failed connect: four in a row (a burst of
submits queued behind slow answers all time out together) stopped the run with "the provider at … is unreachable;
check the network", exit 5 — the provider answered every request it was sent."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx
import pytest

from runner.errors import ProviderUnreachable
from runner.jobs import JobState
from runner.simulator import sim_transport

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


class BusyPool(httpx.AsyncBaseTransport):
    """The simulator, except that the first ``busy`` submits wait out the pool timeout (nothing sent)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, busy: int) -> None:
        self.inner, self.busy = inner, busy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and self.busy > 0:
            self.busy -= 1
            raise httpx.PoolTimeout("no connection of the pool became free in time")
        return await self.inner.handle_async_request(request)


async def test_submits_that_wait_out_the_pool_timeout_are_sent_later_not_a_provider_unreachable(
    rig_factory: Callable[..., Rig],
) -> None:
    first = rig_factory()
    rig = rig_factory(transport=BusyPool(sim_transport(first.sim), busy=8), state=first.state.parent / "busy")
    rig.sim = first.sim
    rig.plan(make_jobs(3))
    result = await rig.engine(concurrency=3).run()
    assert not isinstance(result.error, ProviderUnreachable), result.error
    assert result.error is None, result
    assert result.done == 3 and rig.counts()[JobState.DONE] == 3, (result, rig.counts())
    assert rig.sim.stats()["accepted_total"] == 3  # each paid once


async def test_a_pool_that_never_frees_a_connection_ends_the_submits_in_minutes_not_never(
    rig_factory: Callable[..., Rig],
) -> None:
    """Every submit waits out the pool timeout (a connection never given back: a bug, a wedged download): not
    counted as failed connects, the run must still end by itself, its jobs pending and the pool named."""
    first = rig_factory()
    rig = rig_factory(transport=BusyPool(sim_transport(first.sim), busy=10**9), state=first.state.parent / "busy")
    rig.sim = first.sim
    rig.plan(make_jobs(2))
    with anyio.move_on_after(6 * 3600) as scope:
        result = await rig.engine(concurrency=2).run()
    assert not scope.cancelled_caught, "still waiting for a connection after 6 h"
    assert result.error is not None and "connection" in str(result.error), result
    assert rig.counts()[JobState.PENDING] == 2 and rig.sim.stats()["accepted_total"] == 0
