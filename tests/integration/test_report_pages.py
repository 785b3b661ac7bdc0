"""`runner report` of a big batch writes an index and pages of at most PER_PAGE clips, never one page of them all.

One page held every job: 111 MB with 120k `<video>` elements at 200k jobs (bench/ops_scale.py, docs/benchmarks.md),
which a browser opens slowly if at all. Counted here: cards a page, pages written, every clip and every failed job
reachable from the index through links that lead to files of the folder; the terminal says how many pages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from batch_support import stored_batch
from click.testing import CliRunner

from runner.cli import main
from runner.ledger.sqlite.ledger import SqliteLedger
from runner.reporting import ticker
from runner.reporting.gallery_page import PER_PAGE

PER_GROUP = PER_PAGE + 50  # two groups of two pages each


def _batch(tmp_path: Path) -> tuple[Path, Path, set[str]]:
    """2 × PER_GROUP jobs, every other one done with its video, one in 10 failed; the done ones' output names."""
    return stored_batch(tmp_path, "big", ["fox", "owl"], PER_GROUP, failed_every=10)


def _links(page: Path, dest: Path) -> list[Path]:
    """The files of the folder ``page`` links to (a page under pages/ links relative to DIR: its <base>)."""
    text = page.read_text()
    base = dest if '<base href="../">' in text else page.parent
    return [base / href for href in re.findall(r'(?:href|src)="([^"#:]+)"', text)]


def test_a_big_report_is_paged_and_every_clip_reachable_from_the_index(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, state, done = _batch(tmp_path)
    reads, counts = [0], SqliteLedger.counts

    def counted(self: SqliteLedger, *args: Any, **kwargs: Any) -> Any:
        reads[0] += 1
        return counts(self, *args, **kwargs)

    monkeypatch.setattr(SqliteLedger, "counts", counted)
    now = [0.0]

    def clock() -> float:
        now[0] += 30.0
        return now[0]

    monkeypatch.setattr(ticker, "_clock", clock)
    dest = tmp_path / "report"
    (dest / "pages").mkdir(parents=True)
    (dest / "pages" / "9-1.html").write_text("a page of an earlier, bigger report")
    (dest / "pages" / "notes.txt").write_text("the user's")

    result = CliRunner().invoke(main, ["report", str(manifest), "--state", str(state), "--to", str(dest)])

    assert result.exit_code == 0, result.output
    pages = sorted((dest / "pages").glob("*.html"))
    # the header's counts read once for all pages, not at each (190 s of a 200k-job report's 1,200 pages), which
    # are told as they are written
    assert reads[0] <= 3, reads
    assert "runner: report: 2 of 5 page(s) written" in result.stderr, result.stderr
    assert not (dest / "pages" / "9-1.html").exists()  # an earlier report's page this one does not write
    assert [p.name for p in pages] == ["1-1.html", "1-2.html", "2-1.html", "2-2.html", "problems-1.html"]
    assert f"{2 * PER_GROUP} job(s), {len(done)} video(s) in 2 group(s) on 6 page(s)" in result.stderr, result.stderr
    index = (dest / "index.html").read_text()
    assert "<video" not in index and len(index) < 20_000
    reached = {page for page in _links(dest / "index.html", dest) if page.suffix == ".html"}
    assert reached == set(pages)  # the index links every page, and the problems' table
    cards, videos, rows = 0, set(), 0
    for page in pages:
        text = page.read_text()
        assert text.count('<figure class="card') <= PER_PAGE and text.count("<tr><td><code>") <= PER_PAGE
        cards += text.count('<figure class="card')
        rows += text.count("<tr><td><code>")
        for target in _links(page, dest):
            assert target.exists(), (page.name, target)  # videos, the index, the pages before and after
            if target.suffix == ".mp4":
                videos.add(target.name)
    assert (cards, videos, rows) == (2 * PER_GROUP, done, (2 * PER_GROUP) // 10)
    assert (dest / "pages" / "notes.txt").exists()  # only the names a report writes are removed

