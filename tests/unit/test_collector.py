"""Registration runs the young-generation collector every 50,000 allocations, not every 700 (issue 14 item 5).

A million-job registration holds a batch of jobs at a time and frees each by reference counting; a
collection every 700 allocations rescanned the batch about 4,000 times per million jobs for nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

from runner.collector import BULK_THRESHOLD, fewer_collections
from runner.jobs import JobSpec
from runner.ledger import open_ledger


def _jobs(n: int, seen: list[tuple[int, int, int]]) -> Iterator[JobSpec]:
    for i in range(n):
        seen.append(gc.get_threshold())
        yield JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"p {i}", "duration": 5}, vars={"i": i},
                            repeat=1, output=f"{i}.mp4")


def test_registration_collects_less_often_and_gives_the_thresholds_back(tmp_path: Path) -> None:
    before = gc.get_threshold()
    assert before[0] < BULK_THRESHOLD
    seen: list[tuple[int, int, int]] = []
    with open_ledger(tmp_path) as ledger:
        assert ledger.register("m", "d", _jobs(10, seen)) == 10
        assert {t[0] for t in seen} == {BULK_THRESHOLD}
        assert gc.get_threshold() == before
        seen.clear()
        assert ledger.register("m", "d2", _jobs(11, seen)) == 11  # the usual path (jobs known) too
        assert {t[0] for t in seen} == {BULK_THRESHOLD}
    assert gc.get_threshold() == before


def test_a_disabled_or_slower_collector_is_left_alone() -> None:
    before = gc.get_threshold()
    gc.disable()
    try:
        with fewer_collections():
            assert gc.get_threshold() == before and not gc.isenabled()
    finally:
        gc.enable()
    gc.set_threshold(BULK_THRESHOLD * 2, *before[1:])
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == BULK_THRESHOLD * 2
    finally:
        gc.set_threshold(*before)
    try:
        with fewer_collections():
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.get_threshold() == before
