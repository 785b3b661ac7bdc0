"""A submit whose answer arrives while this process has no file descriptor left (``ulimit -n`` reached).

Limits sweep, 2026-12-05: ``runner run --concurrency 200`` under ``ulimit -n 64`` held 51 paid jobs in doubt. The
answer models build their validators on first use (start-up: issue 14), and building one imports a module (pydantic's
plugin loader): with the descriptor table full, that import failed with EMFILE between the POST and its record, and
an answer carrying its task id was read as "in doubt". Run in a fresh interpreter, where nothing was built yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, resource

import anyio
import httpx

from runner.client import NovitaClient

resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []


def answer(request: httpx.Request) -> httpx.Response:
    # The POST is on the wire: every free descriptor goes, as under a run of many connections.
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    return httpx.Response(200, json={"task_id": "0b6f6b53-5a52-4d3c-9e3a-0d7c4f6e9a21"})


async def main() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = NovitaClient(http, base_url="http://provider.test", api_key="sk-test-fd-0123456789")
        result = await client.submit("kling-v3.0-pro-t2v", {"prompt": "a fox"})
    for fd in held:
        os.close(fd)
    print(json.dumps({"outcome": str(result.outcome), "task_id": result.task_id, "message": result.message}))


anyio.run(main)
"""


def test_an_answer_read_with_no_descriptor_left_is_accepted_not_in_doubt() -> None:
    """The POST's 200 with its task id, read with the descriptor table full: accepted, the id kept (not in doubt)."""
    env = {**os.environ, "PYDANTIC_DISABLE_PLUGINS": "__all__"}
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["task_id"] == "0b6f6b53-5a52-4d3c-9e3a-0d7c4f6e9a21", result
    assert result["outcome"].lower().endswith("accepted"), result
