"""Ledger counts, fuzzed: the fast path (one manifest covering the whole ledger) agrees with the jobs themselves.

``Ledger.counts(manifest)`` answers from the state index alone when the manifest
targets every job; random ledgers of one or two overlapping manifests, with
random jobs moved to running, check it against a walk over the manifest's jobs.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.jobs import JobSpec, JobState
from runner.ledger import open_ledger


def _spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={"i": i}, repeat=1, output=f"{i}.mp4", estimated_usd=0.56)


@settings(max_examples=30, deadline=None)
@given(first=st.sets(st.integers(0, 40), min_size=1, max_size=25),
       second=st.sets(st.integers(0, 40), max_size=25),
       moved=st.sets(st.integers(0, 40), max_size=10))
def test_counts_match_the_manifests_own_jobs(first: set[int], second: set[int], moved: set[int]) -> None:
    """Per-manifest state counts are right whether or not the manifest covers the whole ledger."""
    with tempfile.TemporaryDirectory() as tmp, open_ledger(Path(tmp)) as ledger:
        ledger.register("a", "d1", [_spec(i) for i in sorted(first)])
        if second:
            ledger.register("b", "d2", [_spec(i) for i in sorted(second)])
        for i in sorted(moved & (first | second)):
            key = _spec(i).key
            attempt = ledger.mark_submitting(key)
            ledger.mark_running(key, attempt, task_id=f"t{i}", http_status=200)
        for name in ("a", "b") if second else ("a",):
            expected = Counter(job.state for job in ledger.iter_jobs(name))
            got = ledger.counts(name)
            assert {s: n for s, n in got.items() if n} == dict(expected), (name, got, expected)
            assert sum(got.values()) == ledger.total(name)
        whole = ledger.counts()
        assert whole[JobState.RUNNING] == len(moved & (first | second))
