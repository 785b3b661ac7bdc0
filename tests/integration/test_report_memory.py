"""`runner report` on a big batch holds neither its jobs nor its cards: they go to a spill file in DIR, read back group
by group into the page.

Every job shown was kept in a list, and every card's HTML in memory, then the whole page joined into one string:
910 MiB for a 200k-job batch (bench/ops_scale.py, docs/benchmarks.md), past a small VM's memory before 400k jobs.
Counted here (job records alive while the last job is read), never timed; the pages are the same as before.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_support import stored_batch

from runner.ledger import JobRecord, open_ledger
from runner.ledger.sqlite.ledger import SqliteLedger
from runner.reporting.gallery import write_gallery

N = 300


def _alive() -> int:
    gc.collect()
    return sum(isinstance(thing, JobRecord) for thing in gc.get_objects())


def _batch(tmp_path: Path) -> Path:
    """N jobs in 3 groups (thing), every other one done with its video, one in 10 failed."""
    return stored_batch(tmp_path, "big", ["fox", "owl", "cat"], N // 3, failed_every=10)[1]


def test_the_report_holds_no_job_while_it_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = _batch(tmp_path)
    each, alive = SqliteLedger.iter_jobs, []

    def counted(self: SqliteLedger, manifest: str | None = None, states: object = None) -> Iterator[JobRecord]:
        baseline = _alive()
        jobs = list(each(self, manifest, states))  # type: ignore[arg-type]
        for i, job in enumerate(jobs):
            if i == len(jobs) - 1:
                alive.append(_alive() - baseline - len(jobs))  # records alive beside this list's: the reader's copies
            yield dataclasses.replace(job)  # a copy: alive only while the reader holds it

    with open_ledger(state, readonly=True) as ledger:
        monkeypatch.setattr(SqliteLedger, "iter_jobs", counted)
        result = write_gallery(ledger, "big", tmp_path / "report", axes=["thing", "n"])

    assert (result.jobs, result.videos, result.groups) == (N, N // 2, 3)
    index = (tmp_path / "report" / "index.html").read_text()  # N > PER_PAGE: paged (tests/integration/test_report_pages.py)
    page = "".join(p.read_text() for p in sorted((tmp_path / "report" / "pages").iterdir()))
    assert page.count('<figure class="card') == N and page.count("<tr><td><code>") == N // 10
    assert index.index("thing =</span> fox") < index.index("thing =</span> owl") < index.index("thing =</span> cat")
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["index.html", "pages", "videos"]  # no spill
    assert alive and max(alive) <= 2, alive  # every job read (N) before
