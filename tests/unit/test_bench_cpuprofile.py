"""bench/cpuprofile.py writes its stats even though runner ends its process with ``os._exit``."""

from __future__ import annotations

import pstats
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_profile_of_a_command_is_written(tmp_path: Path) -> None:
    out = tmp_path / "plan.prof"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cpuprofile", str(out), "plan", str(ROOT / "manifests" / "demo.yaml"),
         "--state", str(tmp_path / "state")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert any("plan" in name for (_, _, name) in pstats.Stats(str(out)).stats)  # type: ignore[attr-defined]
