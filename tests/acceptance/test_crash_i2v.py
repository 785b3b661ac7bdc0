"""Kill a real runner on an image-to-video batch, and edit, rename and take away its input images.

The short version of ``bench.crash --i2v --operator``: rows name PNG/JPEG files the harness writes
(sent inline as data: URIs) or https URLs; the books are compared body by body as the runner sends
them (``bench/crashbooks.py``), so an inline image is judged by its data: URI, not its stored reference.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bench.crashlib import EVERY_FAULT, CrashHarness

pytestmark = pytest.mark.timeout(300)

# Each image action once, with kills and the other operator actions around them.
SCRIPT = [
    {"sig": signal.SIGKILL},
    {"sig": signal.SIGTERM, "image": "image swaps mid-run"},
    {"sig": signal.SIGKILL, "image": "image edits", "pause": True},
    {"sig": signal.SIGHUP, "image": "image away mid-run"},
    {"sig": signal.SIGKILL, "image": "image renames", "elsewhere": True},
    {"sig": signal.SIGQUIT, "edit": True},
]


def test_an_i2v_batch_under_kills_and_image_edits_pays_once_and_keeps_every_video(tmp_path: Path) -> None:
    # Tasks of 1.5 s at 4 at a time: the batch outlasts the kills, so every round finds a live runner.
    with CrashHarness(tmp_path, jobs=30, faults=EVERY_FAULT, seed=23, i2v=True, task_seconds=1.5,
                      concurrency=4) as harness:
        manifest = harness.manifest.read_text()
        result = harness.operator_torture(script=SCRIPT, min_after=0.6, max_after=2.5)
    assert "model: kling-v3.0-std-i2v" in manifest and "images/img-0.png" in manifest and "https://" in manifest
    verdict = result.verdict
    log = (tmp_path / "runner.log").read_text()[-3000:]
    assert result.rounds.get("image edits") == result.rounds.get("image renames") == 1, result.rounds
    assert result.rounds.get("image swaps mid-run", 0) + result.rounds.get("image away mid-run", 0) >= 1, result.rounds
    assert verdict.unjudged == 0, verdict
    assert verdict.paid_duplicates == 0 and verdict.unrecorded_paid == 0, (verdict, log)
    assert verdict.files_bad == 0 and verdict.files_verified == verdict.done > 0, verdict
    assert result.paid_without_file == 0 and result.orphaned_without_file == 0, (result, log)
    assert result.outstanding == 0, result
