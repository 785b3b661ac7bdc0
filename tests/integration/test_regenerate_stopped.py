"""A ``runner regenerate`` killed between moving a rejected clip aside and queueing its fresh sample, finished by
the next run (:func:`runner.ledger.set_aside.finish_stopped`): the run of a 200 000-job manifest with one clip
rejected read every done job to find it (about 3 s at each run, for as long as a clip stays rejected); it reads the
rejected ones only now, and finishes only the one whose video was moved aside."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from runner.jobs import JobSpec, JobState
from runner.layout import rejected_path
from runner.ledger import LedgerBackend, open_ledger
from runner.ledger.memory import MemoryLedger
from runner.ledger.set_aside import finish_stopped
from runner.storage.local import LocalStore


class _Reads:
    """The ledger, counting the job records finish_stopped reads."""

    def __init__(self, ledger: LedgerBackend) -> None:
        self._ledger, self.records = ledger, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    def iter_jobs(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for job in self._ledger.iter_jobs(*args, **kwargs):
            self.records += 1
            yield job

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.records += 1
        return self._ledger.get(*args, **kwargs)


def _batch(ledger: LedgerBackend, state: Path, n: int) -> list[str]:
    """``n`` done jobs of manifest ``m``, each with its video at its name; the first two rejected."""
    specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 3},
                           vars={"i": i}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.3) for i in range(n)]
    ledger.register("m", "d", specs)
    for i, spec in enumerate(specs):
        body = f"video {i}".encode()
        (state / "outputs" / "m").mkdir(parents=True, exist_ok=True)
        (state / "outputs" / "m" / spec.output).write_bytes(body)
        attempt = ledger.mark_submitting(spec.key)
        assert attempt is not None
        assert ledger.mark_running(spec.key, attempt, task_id=f"t-{i}", http_status=200)
        assert ledger.mark_succeeded(spec.key, video_url="https://v/x", url_expires_at=None, debug={})
        assert ledger.mark_done(spec.key, path=f"outputs/m/{spec.output}", sha256=hashlib.sha256(body).hexdigest(),
                                bytes=len(body))
    for spec in specs[:2]:
        assert ledger.reject(spec.key, reason="off")
    return [spec.key for spec in specs]


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_a_run_reads_only_the_rejected_jobs_to_finish_a_stopped_regenerate(tmp_path: Path, backend: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with (open_ledger(state) if backend == "sqlite" else MemoryLedger()) as opened:
        ledger = cast(LedgerBackend, opened)
        keys = _batch(ledger, state, 40)
        moved = ledger.get(keys[0])
        assert moved is not None and moved.path is not None
        kept = rejected_path("m", moved.key, moved.sample)
        (state / kept).parent.mkdir(parents=True)
        (state / moved.path).rename(state / kept)  # the regenerate's move, then killed before its ledger step

        reads = _Reads(ledger)
        done = finish_stopped(cast(LedgerBackend, reads), LocalStore(state), "m")

        assert done == [(keys[0], kept)]
        assert reads.records <= 2, f"read {reads.records} job records to find 2 rejected ones among 40"
        assert ledger.counts("m")[JobState.PENDING] == 1 and ledger.review_counts("m")["rejected"] == 1
        assert (state / "outputs" / "m" / "c1.mp4").exists()  # rejected, never regenerated: left as it is


def test_a_runs_count_of_rejected_clips_reads_the_review_index_not_every_done_job(tmp_path: Path) -> None:
    """Every run's start counts the manifest's rejected clips (and finish_stopped asks the same): its query went
    through the state index, every done job of the manifest read (0.7 s a call at 1M done jobs, twice a run: a no-op
    resume of 1M jobs 1.8 → 3.3 s). The plan of each statement it makes must search the review index."""
    with open_ledger(tmp_path / "state") as ledger:
        specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"city {i}", "duration": 5},
                               vars={"i": i}, repeat=1, output=f"{i}.mp4", estimated_usd=0.56) for i in range(3)]
        ledger.register("m", "d", specs)
        raw = ledger._conn.db.conn  # type: ignore[attr-defined]
        said: list[str] = []
        raw.set_trace_callback(said.append)
        try:
            assert ledger.review_counts("m") == {"rejected": 0, "accepted": 0}
            assert ledger.review_counts(None) == {"rejected": 0, "accepted": 0}
        finally:
            raw.set_trace_callback(None)
        selects = [sql for sql in said if sql.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 2, said
        for sql in selects:
            plan = str(raw.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
            assert "jobs_review" in plan and "jobs_state" not in plan and "LIST SUBQUERY" not in plan, (sql, plan)
