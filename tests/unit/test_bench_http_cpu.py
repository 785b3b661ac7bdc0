"""bench/http_cpu.py runs end to end and prints a figure per concurrency (a smoke test, no timing asserted)."""

from __future__ import annotations

import json

import pytest

from bench import http_cpu


def test_http_cpu_prints_both_sides_for_each_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    assert http_cpu.main(["--requests", "60", "--concurrency", "1,4", "--repeat", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["concurrency"] for line in lines] == [1, 4]
    for line in lines:
        assert line["lean_us_cpu_per_request"] > 0 and line["httpx_pool_us_cpu_per_request"] > 0
