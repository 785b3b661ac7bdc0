"""bench/waves.py: the wrapped runner writes its client's calls although runner ends with ``os._exit``, and the
figures read the waves from them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.waves import _figures

ROOT = Path(__file__).resolve().parents[2]


def test_the_waves_are_read_from_the_calls() -> None:
    calls = []
    for wave in range(3):  # C = 2: two submits a wave, 10 and 30 ms after the wave's start; T = 1 s
        for offset in (0.010, 0.030):
            start = 100.0 + wave * 1.05 + offset
            calls += [("submit", start, start + 0.002), ("task_result", start + 1.0, start + 1.001),
                      ("download", start + 1.002, start + 1.006)]
    figures = _figures([list(call) for call in calls], 2, 1.0)
    assert figures["waves_ms"] == [[0.0, 20.0], [1050.0, 1070.0], [2100.0, 2120.0]]
    assert figures["spread_ms"] == [20.0, 20.0, 20.0]
    assert figures["first_wave_polls_ms"] == [1000.0, 1020.0, 2]  # 0.9 T to 1.5 T: the first wave's two polls
    assert figures["median_call_ms"] == {"submit": 2.0, "task_result": 1.0, "download": 4.0}
    assert figures["last_stored_ms"] == 3126.0


def test_the_wrapped_runner_writes_its_calls(tmp_path: Path) -> None:
    out = tmp_path / "calls.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "waves.py"), "--child", str(out), "plan",
         str(ROOT / "manifests" / "demo.yaml"), "--state", str(tmp_path / "state")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == []  # plan sends nothing; the file is written all the same
