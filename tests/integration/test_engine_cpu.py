"""The engine's CPU per job, by counts that do not depend on the machine (issue 14: CPU per job at or below a
naive threaded script's): SQLite statements per job on the ledger's connection."""

from __future__ import annotations

import collections
from collections.abc import Callable

import pytest
from anyio.streams.memory import MemoryObjectSendStream

from runner.engine import StopReason
from runner.jobs import JobState

from engine_rig import Rig, make_jobs

pytestmark = pytest.mark.anyio


def _verb(sql: str) -> str:
    words = sql.split()
    if words[:2] == ["UPDATE", "meta"]:  # the commit mark's stamp (runner/ledger/sqlite/mark.py), counted apart
        return "UPDATE meta"
    return " ".join(words[:2]).upper() if words and words[0].upper() in ("PRAGMA", "INSERT") else words[0].upper()


async def test_sqlite_statements_per_job(rig_factory: Callable[..., Rig]) -> None:
    """A job's life on the ledger, counted: the write-ahead and the task id (each UPDATE + its attempt row, in a
    durable transaction), succeeded (a guarded UPDATE, nothing read first), done; the one read the lanes need
    (the job and its targets, for the download). Pinned so that a statement added to the hot path is a decision, not an accident."""
    rig = rig_factory()
    jobs = 40
    rig.plan(make_jobs(jobs))
    seen: collections.Counter[str] = collections.Counter()
    mark = rig.ledger._conn.hook
    assert mark is not None
    marked = mark.commits
    rig.ledger._conn.db.conn.set_trace_callback(lambda sql: seen.update([_verb(sql)]))
    result = await rig.run(concurrency=8)
    rig.ledger._conn.db.conn.set_trace_callback(None)
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == jobs
    per_job = {verb: round(n / jobs, 2) for verb, n in seen.items()}
    # The job and its targets once, in one read (a poll's answer moves the job unread): before, 3.4 a job. An
    # answer that the task still runs reads nothing either (the first wave's probing scout alone asks ~35 times).
    # And one indexed read of each accepted task id: does another job hold it already (then this one is in doubt).
    # And one read of each job's targets before it is sent: its video must be storable where its download will
    # put it, the folder of the manifest that listed it first (runner/engine/admission.py).
    assert seen["SELECT"] <= 3.5 * jobs, per_job
    assert seen["UPDATE"] == 5 * jobs and seen["INSERT INTO"] == jobs, per_job
    # And the commit mark's stamp: one UPDATE in each durable transaction (the write-aheads' and the task ids').
    assert seen["UPDATE meta"] == mark.commits - marked <= 2 * jobs, per_job
    # Transactions: the write-ahead and the task id (two statements each, durable); succeeded and done are one
    # UPDATE each, committed on its own (before: a BEGIN and a COMMIT around each, 4 a job). The write-aheads of
    # the jobs ready at once share one transaction: the first wave's 8 are one (before: 2 a job, 80).
    assert seen["BEGIN"] == seen["COMMIT"] <= jobs + 1 + (jobs - 8), per_job
    # The synchronous level goes FULL for a money transition and back to NORMAL for the others: how often it
    # switches depends on how the lanes interleave (about twice a job; 2.6 once in a full suite on a loaded machine,
    # the worker threads' fsyncs finishing in another order). The pins that matter are the counts above and below.
    toggles = seen["PRAGMA SYNCHRONOUS=FULL"] + seen["PRAGMA SYNCHRONOUS=NORMAL"]
    assert toggles <= 3 * jobs, per_job
    # 17.4 before round 5, 18.4 the round before; +1 a job since the holder of each accepted task id is read, +1
    # since each job's targets are read before it is sent; the mark's stamps (pinned above) apart
    assert sum(seen.values()) - toggles - seen["UPDATE meta"] <= 13.5 * jobs, per_job


async def test_the_lanes_hand_work_on_without_a_trip_through_the_loop(
    rig_factory: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poll's answer to the updates lane, a result to the fetch lane, an accepted task to the poller: each hand-over
    into a stream with room is immediate (``send_nowait``), not a checkpoint first (``send``: the item waits behind
    everything else ready to run). The result's hand-over is on the critical path: the slot frees right after it."""
    rig = rig_factory()
    jobs = 40
    rig.plan(make_jobs(jobs))
    waits = 0
    real = MemoryObjectSendStream.send

    async def counting(self: MemoryObjectSendStream[object], item: object) -> None:
        nonlocal waits
        waits += 1
        await real(self, item)

    monkeypatch.setattr(MemoryObjectSendStream, "send", counting)
    result = await rig.run(concurrency=8)
    assert result.reason is StopReason.COMPLETE and rig.counts()[JobState.DONE] == jobs
    assert waits <= jobs // 4, f"{waits} awaited stream sends for {jobs} jobs"  # before: 3 a job
