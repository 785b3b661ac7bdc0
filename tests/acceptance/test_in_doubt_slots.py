"""An in-doubt submit and the provider's concurrency limit (found by the multi-runner crash torture).

A POST whose answer is lost (a dropped connection, a gateway page, a malformed 200) may have
created a task: the job is held ``in_doubt``. Its slot used to free at once, while the task it may
have created could still run at the provider, which then saw concurrency + 1 tasks. An in-doubt job
now keeps its slot for ``RUNNER_IN_DOUBT_HOLD`` seconds after its POST (15 minutes by default, the
life of a task; 3 s in these tests, whose tasks take 2 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.test_cli_support import FAST, THREE_JOBS, ProviderFactory, provider, run_cli, write_manifest

__all__ = ["provider"]

pytestmark = pytest.mark.timeout(60)


def test_a_dropped_submit_s_task_still_counts_against_the_concurrency_limit(tmp_path: Path,
                                                                           provider: ProviderFactory) -> None:
    # seed 1: the first POST creates a task and its connection drops (draw 0.13 < 0.5), the next ones answer
    sim = provider(task_seconds=2.0, p_drop=0.5, seed=1)
    manifest = write_manifest(tmp_path, THREE_JOBS, "trio.yaml")
    result = run_cli("run", str(manifest), "--state", str(tmp_path / "state"), "--base-url", sim.base_url,
                     *FAST, "--concurrency", "1", cwd=tmp_path)
    stats = sim.sim.stats()
    assert result.code == 4, result  # the dropped submit is held in doubt
    assert stats["responses"].get("submit:drop") == 1, stats["responses"]
    assert stats["max_active"] <= 1, stats  # the provider saw the dropped one and the next one at once
