"""The submit's active-time deadline never throws away an answer that arrived (review of the issue-9 merge).

The deadline's watcher cancels the POST when active time runs out. If the answer was read all the
same (it was in the socket and the read finished without another checkpoint), the POST was answered:
turning it into an in-doubt job would hold — and invite paying again for — a task whose id we have.
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from runner.client import NovitaClient, SubmitOutcome

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_an_answer_read_as_the_deadline_fires_is_accepted() -> None:
    async def answer_despite_cancel(request: httpx.Request) -> httpx.Response:
        # The read completes without a checkpoint where the watcher's cancel could land.
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.15)
        return httpx.Response(200, json={"task_id": "task-answered"})

    timeout = httpx.Timeout(5.0, read=0.05)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer_despite_cancel), timeout=timeout) as http:
        client = NovitaClient(http, base_url="https://api.novita.ai", api_key="sk-test-key", pause_tick=0.01)
        result = await client.submit("kling-v3.0-pro-t2v", {"prompt": "p"})
    assert result.outcome is SubmitOutcome.ACCEPTED, result.message
    assert result.task_id == "task-answered"
