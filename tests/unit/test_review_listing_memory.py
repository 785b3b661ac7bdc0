"""The review page (`runner review`) holds the jobs of the page it shows, not every job of the batch.

Each page asked of the server (24 rows) read every job of the manifest and kept each one it showed or not: 455 MiB
of a 200k-job batch for one page, a second request as much again (bench/ops_scale.py, docs/benchmarks.md); a 1M-job
batch's page asked for more than a small VM has. Counted here (job records alive while the last job is read),
never timed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runner.jobs import JobState
from runner.ledger import JobRecord
from runner.review.page import Filters, list_rows

N, REPEATS, PAGE = 600, 2, 10


def _alive() -> int:
    gc.collect()
    return sum(isinstance(thing, JobRecord) for thing in gc.get_objects())


def _jobs(seen: list[int]) -> Iterator[JobRecord]:
    """N requests, each REPEATS times: the first repeat of all in order, then the second ones (an edit that added a
    repeat plans them last); how many records are alive is counted as the last one is read."""
    for repeat in range(1, REPEATS + 1):
        for i in range(N):
            if repeat == REPEATS and i == N - 1:
                seen.append(_alive())
            yield JobRecord(key=f"{i:08x}{repeat}", model="kling-v3.0-pro-t2v", request={"prompt": f"p{i}"},
                            vars={"i": i, "j": i % 7}, repeat=repeat, state=JobState.DONE, task_id=None, attempts=1,
                            spent_usd=0.5, estimated_usd=0.5, error=None, reason=None, video_url=None,
                            url_expires_at=None, path=f"outputs/m/{i}.mp4", sha256="0", bytes=1, output=f"{i}.mp4",
                            submitted_at=None, updated_at=0.0)


@pytest.mark.parametrize(("page", "first"), [(1, 0), (7, 60), (999, 590)])
def test_a_page_holds_its_own_rows_only(page: int, first: int) -> None:
    baseline, seen = _alive(), []
    listing = list_rows(_jobs(seen), Filters(page=page), page_size=PAGE)

    assert listing.pages == N // PAGE and listing.total_rows == N and listing.total_jobs == N * REPEATS
    assert [[job.vars["i"] for job in row] for row in listing.rows] == [[i] * REPEATS for i in range(first, first + PAGE)]
    assert listing.variables == {"i": sorted(str(i) for i in range(N))[:200], "j": [str(j) for j in range(7)]}
    # the page's rows and the last page's, both repeats: every job (N * REPEATS) before
    assert seen[0] - baseline <= 2 * PAGE * REPEATS + 1, seen
