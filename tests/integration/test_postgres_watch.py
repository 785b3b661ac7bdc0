"""`runner status --watch` / `runner top` on a PostgreSQL ledger whose server goes away mid-watch (hunt-pg2, item 5).

The watch reopens the ledger at each refresh; a server restarted, failed over or cut off by the network made that
open raise, and the watch ended with exit 5 — a terminal left watching a night's run showed a shell prompt. It
rides it out now: the last frame is shown again marked stale (since when, and why) until the server answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import LedgerNotReached
from runner.jobs import JobSpec
from runner.ledger.postgres import open_postgres_ledger
from runner.reporting.watch import WatchFrame, frame_dict, frame_line
from runner.service import watching
from runner.service.state import use_ledger_url
from runner.testing_pg import TempPostgres

MANIFEST = 'name: trio\nprompt: "a {animal} crossing a quiet street"\nmatrix:\n  animal: [cat]\noutput: "{animal}.mp4"\n'


def test_a_server_gone_mid_watch_shows_the_last_frame_stale_until_it_answers(tmp_path: Path) -> None:
    manifest = tmp_path / "trio.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    frames: list[WatchFrame] = []
    with TempPostgres.start() as server:  # its own server: halted below
        url = server.create_database("watch")
        with open_postgres_ledger(url, tmp_path / "state") as ledger:
            ledger.register("trio", "d", [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "c"},
                                                        vars={}, repeat=1, output="c.mp4", estimated_usd=0.56)])
        between: list[Callable[[], object]] = [server.halt, lambda: None, server.resume]
        use_ledger_url(url)
        try:
            assert watching.watch(manifest, tmp_path / "state", every=2.0, show=frames.append, refreshes=4,
                                  sleep=lambda seconds: between.pop(0)()) == 4
        finally:
            use_ledger_url(None)
    assert [frame.summary.total for frame in frames] == [1, 1, 1, 1]
    assert frames[0].stale is None and frames[3].stale is None
    assert frames[1].stale is not None and frames[1].stale == frames[2].stale  # since the first refresh that failed
    assert "could not be read since" in frames[1].stale and "cannot connect" in frames[1].stale
    assert frame_line(frames[1]).endswith(f"[stale: {frames[1].stale}]") and frame_dict(frames[1])["stale"]
    assert frame_dict(frames[3])["stale"] is None


def test_a_server_that_cannot_be_reached_as_the_watch_starts_is_still_exit_5(tmp_path: Path) -> None:
    manifest = tmp_path / "trio.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    with TempPostgres.start() as server:
        url = server.create_database("watch")
        with open_postgres_ledger(url, tmp_path / "state") as ledger:
            ledger.register("trio", "d", [])
        server.halt()
        use_ledger_url(url)
        try:
            with pytest.raises(LedgerNotReached):
                watching.watch(manifest, tmp_path / "state", show=lambda frame: None, refreshes=1)
        finally:
            use_ledger_url(None)
            server.resume()
