"""`runner runs` of a run that was killed: on a ledger of one writer, a run without an end that a later run
followed stopped before that run began (review sweep: its "took" grew until now — 7m52s for a run killed after
~11 s — and its "done" counted the jobs the next run finished)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.jobs import JobSpec
from runner.ledger import LedgerBackend, MemoryLedger, open_ledger
from runner.reporting.history import next_starts, run_dict, run_lines


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _done(ledger: LedgerBackend, spec: JobSpec) -> None:
    attempt = ledger.mark_submitting(spec.key)
    assert attempt is not None
    assert ledger.mark_running(spec.key, attempt, task_id=f"t-{spec.key[:6]}", http_status=200)
    assert ledger.mark_succeeded(spec.key, video_url="https://v/x", url_expires_at=None, debug={})
    assert ledger.mark_done(spec.key, path=f"outputs/m/{spec.output}", sha256="s", bytes=1)


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_a_killed_run_ends_where_the_next_run_began(tmp_path: Path, backend: str) -> None:
    clock = Clock()
    specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"p{i}", "duration": 5}, vars={"i": i},
                           repeat=1, output=f"c{i}.mp4", estimated_usd=0.5) for i in range(2)]
    ledger: LedgerBackend = open_ledger(tmp_path, clock=clock) if backend == "sqlite" else MemoryLedger(clock=clock)
    with ledger:
        ledger.register("m", "d", specs)
        killed = ledger.start_run(argv=["runner", "run", "m.yaml"])
        clock.now += 5
        _done(ledger, specs[0])  # the killed run finished one job
        clock.now += 6  # then kill -9: no end recorded
        clock.now += 460  # the next run, minutes later
        later = ledger.start_run(argv=["runner", "run", "m.yaml"])
        clock.now += 3
        _done(ledger, specs[1])
        ledger.finish_run(later, exit_code=0, counts={})
        history = ledger.run_history("m")
    newest, oldest = history
    assert (newest.run.id, newest.done) == (later, 1)
    assert (oldest.run.id, oldest.done) == (killed, 1), "the next run's job counted as the killed run's"
    ends = next_starts(history, one_writer=True)
    assert ends == {killed: newest.run.started_at}
    shown = run_dict(oldest, now=clock.now + 3600, next_start=ends[killed])
    assert shown["killed"] is True and shown["duration_s"] == 471.0
    table = "\n".join(run_lines(history, now=clock.now + 3600, ends=ends))
    assert "killed" in table and "running or killed" not in table and "≤ 7m51s" in table, table
    assert next_starts(history, one_writer=False) == {}  # several hosts: runs overlap, nothing is inferred
