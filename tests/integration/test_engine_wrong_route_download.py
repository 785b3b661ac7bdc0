"""A wrong base URL found while refreshing a result URL stops the run like on a poll (review of the merge).

A succeeded job whose URL must be signed again asks task-result; a 404 API_NOT_FOUND there means the
base URL is wrong (a configuration error): the run stops with that error, the job stays succeeded —
not retried as a download error until it gives up and exits as if work were merely outstanding.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runner.client import NovitaClient
from runner.errors import EndpointNotFound
from runner.jobs import JobState

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


async def test_a_wrong_base_url_on_a_url_refresh_stops_the_run(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    (job,) = make_jobs(1)
    rig.plan([job])
    attempt = rig.ledger.mark_submitting(job.key)
    rig.ledger.mark_running(job.key, attempt, task_id="task-1", http_status=200)
    rig.ledger.mark_succeeded(job.key, video_url=None, url_expires_at=None, debug={})  # the URL must be signed again
    rig.client = NovitaClient(rig.http, base_url="http://sim.test/api", api_key="test-key",
                              backoff_base=0.001, backoff_max=0.01)
    result = await rig.run(submit=False, collect=True)
    assert isinstance(result.error, EndpointNotFound), result
    assert rig.counts()[JobState.SUCCEEDED] == 1
    downloads = [a for a in rig.ledger.attempts(job.key) if a.kind == "download"]
    assert len(downloads) <= 1, "the wrong URL was retried as a download error"
