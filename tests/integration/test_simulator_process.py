"""``python -m runner.simulator`` as a subprocess: announces its URL, serves, stops on a signal."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"
RESULT = "/v3/async/task-result"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_subprocess_serves_then_exits_on_signal(sim_process: Callable[..., Any], sig: int) -> None:
    """The module prints 'simulator listening on URL', serves the API there, and exits 0 on SIGTERM/SIGINT."""
    handle = sim_process(api_key="sk-proc", task_seconds=0)
    assert handle.base_url.startswith("http://127.0.0.1:")
    headers = {"Authorization": "Bearer sk-proc"}
    with httpx.Client(base_url=handle.base_url, headers=headers, timeout=10) as client:
        task_id = client.post(SUBMIT, json={"prompt": "a kite"}).json()["task_id"]
        result = client.get(RESULT, params={"task_id": task_id}).json()
        video = client.get(result["videos"][0]["video_url"])
        wrong = client.post(SUBMIT, json={"prompt": "a kite"}, headers={"Authorization": "Bearer nope"})
        stats = client.get("/_sim/stats").json()
    assert result["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert video.content[4:8] == b"ftyp"
    assert wrong.status_code == 403
    assert stats["accepted_total"] == 1
    assert handle.stop(sig) == 0


def test_bad_config_exits_2() -> None:
    """An invalid --config exits 2 naming the bad knob, or saying it is not JSON."""
    bad = subprocess.run(
        [sys.executable, "-m", "runner.simulator", "--port", "0", "--config", '{"p_drop": 3}'],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "p_drop" in bad.stderr
    not_json = subprocess.run(
        [sys.executable, "-m", "runner.simulator", "--port", "0", "--config", "p_drop=1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert not_json.returncode == 2
    assert "JSON" in not_json.stderr


def test_task_seconds_flag_reaches_the_server(sim_process: Callable[..., Any]) -> None:
    """--task-seconds sets how long the subprocess's tasks take."""
    handle = sim_process(task_seconds=600, seed=4)
    with httpx.Client(base_url=handle.base_url, headers={"Authorization": "Bearer k"}, timeout=10) as client:
        config = client.get("/_sim/config").json()
        task_id = client.post(SUBMIT, json={"prompt": "slow"}).json()["task_id"]
        task = client.get(RESULT, params={"task_id": task_id}).json()["task"]
    assert (config["task_seconds"], config["seed"]) == (600, 4)
    assert task["status"] == "TASK_STATUS_QUEUED"
    assert 590 <= task["eta"] <= 600
