"""Replaying the rescue journal into a ledger whose jobs moved on (review of the issue-9 merge).

A journal line says: the provider accepted (and billed) task T for attempt A of job K, and the
ledger could not record it. Replayed later, it must never attach T to a *newer* attempt of K (that
attempt's own task would then be forgotten instead of held in doubt), and it must never throw T
away while the ledger does not know it (the operator's retry would pay for K again).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import LedgerDiskError
from runner.jobs import JobSpec, JobState
from runner.ledger import SqliteLedger, open_ledger
from runner.ledger.rescue import RESCUE_NAME, RescueEntry, append_entry, pending_entries

MODEL = "kling-v3.0-pro-t2v"


def spec(i: int) -> JobSpec:
    return JobSpec.build(model=MODEL, request={"prompt": f"harbour {i}", "duration": 5}, vars={"i": str(i)},
                         repeat=1, output=f"h{i}.mp4", estimated_usd=0.56)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


_OPENED: list[SqliteLedger] = []


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with open_ledger(tmp_path / "state", clock=Clock()) as opened:
        opened.register("m", "digest", [spec(i) for i in range(2)])
        yield opened
    while _OPENED:
        _OPENED.pop().close()


def restart(ledger: SqliteLedger) -> SqliteLedger:
    """The process dies and a new one opens the ledger: its start-up recovery runs (journal first)."""
    ledger.close()
    reopened = open_ledger(ledger.state_dir, clock=Clock())
    _OPENED.append(reopened)
    reopened.recover_expired(reopened.owner)
    return reopened


def journal(ledger: SqliteLedger, key: str, task_id: str, attempt: int) -> None:
    assert append_entry(ledger.state_dir, RescueEntry(key=key, task_id=task_id, attempt=attempt, at=1.0))


def test_a_line_for_an_older_attempt_is_not_attached_to_a_newer_submit(ledger: SqliteLedger) -> None:
    """K's task T1 was journalled and applied, but the 'consumed' line never landed; T1 then failed and
    the job was retried; a kill during the new POST leaves K submitting. The replay must not put T1 on
    the new attempt: that POST may have created T2, so K is in doubt."""
    key = spec(0).key
    first = ledger.mark_submitting(key)
    journal(ledger, key, "task-one", first)
    ledger.mark_running(key, first, task_id="task-one", http_status=200)  # as apply_rescue did; no consumed line
    ledger.mark_failed(key, reason="FAILED")
    ledger.retry_failed_job(key)
    ledger.mark_submitting(key)  # killed on the wire

    ledger = restart(ledger)
    job = ledger.get(key)
    assert job is not None
    assert job.state is JobState.IN_DOUBT, f"the old task {job.task_id} was attached to a newer submit"
    assert pending_entries(ledger.state_dir) == []


def test_a_line_for_a_job_turned_in_doubt_is_recorded_not_dropped(ledger: SqliteLedger) -> None:
    """The journal could not be read at the last start, so K was put in doubt; now it can: T is the
    task of K's last submit, paid for — K runs with it (retrying K would pay twice)."""
    key = spec(0).key
    attempt = ledger.mark_submitting(key)
    ledger = restart(ledger)  # the journal was not readable then
    journal(ledger, key, "task-paid", attempt)

    ledger.apply_rescue()
    job = ledger.get(key)
    assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-paid"
    assert pending_entries(ledger.state_dir) == []


def test_a_line_for_a_job_the_operator_reset_is_recorded(ledger: SqliteLedger) -> None:
    """Same, after `retry --in-doubt` made K pending (not yet resubmitted): the task exists and was
    paid; recording it is cheaper than paying again."""
    key = spec(0).key
    attempt = ledger.mark_submitting(key)
    ledger = restart(ledger)
    ledger.reset("m", JobState.IN_DOUBT)
    journal(ledger, key, "task-paid", attempt)

    ledger.apply_rescue()
    job = ledger.get(key)
    assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-paid"
    assert ledger.spent_usd("m") == pytest.approx(0.56)


def test_a_line_for_a_job_resubmitted_since_is_kept_on_record(ledger: SqliteLedger) -> None:
    """K was reset and resubmitted as T2 before the line could be replayed: both tasks were paid. T1 is
    not attached (K has its task) but it stays on K's record, where `show` and adopt's checks find it."""
    key = spec(0).key
    attempt = ledger.mark_submitting(key)
    ledger = restart(ledger)
    ledger.reset("m", JobState.IN_DOUBT)
    second = ledger.mark_submitting(key)
    ledger.mark_running(key, second, task_id="task-two", http_status=200)
    journal(ledger, key, "task-one", attempt)

    ledger.apply_rescue()
    job = ledger.get(key)
    assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-two"
    assert ledger.key_of_task("task-one") == key, "the paid task's id is nowhere in the ledger"
    assert pending_entries(ledger.state_dir) == []


def test_a_journal_left_by_a_removed_ledger_is_set_aside_by_new_ledger(tmp_path: Path) -> None:
    """--new-ledger: the old journal's lines are about the old ledger's attempts; replayed into the new
    one they could attach an old task to a new submit. They are set aside (kept for the operator)."""
    state = tmp_path / "state"
    with open_ledger(state, clock=Clock()) as old:
        old.register("m", "digest", [spec(0)])
        attempt = old.mark_submitting(spec(0).key)
        journal(old, spec(0).key, "old-task", attempt)
    (state / "ledger.db").unlink()
    with open_ledger(state, clock=Clock(), new_ledger=True) as new:
        new.register("m", "digest", [spec(0)])
        new.mark_submitting(spec(0).key)  # killed on the wire
        new = restart(new)
        job = new.get(spec(0).key)
        assert job is not None and job.state is JobState.IN_DOUBT, "an old ledger's task was attached"
    assert not (state / RESCUE_NAME).exists()
    assert list(state.glob(f"{RESCUE_NAME}.stale-*")), "the old journal was not kept"


def test_an_older_line_kept_on_record_does_not_hide_the_newer_submits_line(ledger: SqliteLedger) -> None:
    """Two lines for K: T1 (attempt 1, K reset and resubmitted since) and T2 (attempt 2, the run died
    before recording it). T1 is kept on record; T2 is still K's task."""
    key = spec(0).key
    first = ledger.mark_submitting(key)
    ledger = restart(ledger)
    ledger.reset("m", JobState.IN_DOUBT)
    second = ledger.mark_submitting(key)
    journal(ledger, key, "task-one", first)
    journal(ledger, key, "task-two", second)

    ledger = restart(ledger)
    job = ledger.get(key)
    assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-two"
    assert ledger.key_of_task("task-one") == key


def test_a_journal_that_cannot_be_read_stops_the_start_and_puts_nothing_in_doubt(
        ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal holds K's paid task id, and reading it fails (an I/O error on a dying disk, where the ownership
    check of the run's start, which asks for read and write permission, sees nothing wrong). The start logged it and
    went on: K, submitting, was put in doubt, its paid task's id unread — and `retry --in-doubt` paid for it again.
    The ledger refuses to start (a LedgerDiskError, exit 6), K as it was; once the journal reads, K runs with it."""
    key = spec(0).key
    attempt = ledger.mark_submitting(key)
    journal(ledger, key, "task-paid", attempt)
    read_bytes = Path.read_bytes

    def failing(path: Path) -> bytes:
        if path.name == RESCUE_NAME:
            raise OSError(errno.EIO, "Input/output error", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(LedgerDiskError, match=r"cannot read the rescue journal .*Input/output error"):
        restart(ledger)
    monkeypatch.undo()
    _OPENED.pop().close()  # the process that refused to start ends
    reopened = restart(ledger)
    job = reopened.get(key)
    assert job is not None and job.state is JobState.RUNNING and job.task_id == "task-paid"
