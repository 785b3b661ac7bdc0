"""The contract of ``mark_submitting_many``: several write-aheads in ONE durable transaction, each exactly
what ``mark_submitting`` would have done (issue 14: one fsync for a wave of submits, not one a job).

Runs against every backend (SQLite, memory, PostgreSQL) through ``test_ledger_backends``' fixtures."""

from __future__ import annotations

import pytest
from test_ledger_backends import PRICE, Clock, clock, key, ledger, running, state

from runner.errors import LedgerError
from runner.jobs import JobState
from runner.ledger import LedgerBackend

__all__ = ["clock", "ledger"]  # the fixtures, imported for pytest


def test_many_write_aheads_move_each_job_as_one_would(ledger: LedgerBackend, clock: Clock) -> None:
    """Each key: pending → submitting with its own open attempt, its estimate reserved, owned by the caller."""
    attempts = ledger.mark_submitting_many([key(0), key(1), key(2)])
    assert len(attempts) == 3 and all(a is not None for a in attempts) and len(set(attempts)) == 3
    for i, attempt in enumerate(attempts):
        job = ledger.get(key(i))
        assert job is not None and job.state is JobState.SUBMITTING
        assert job.attempts == 1 and job.submitted_at == clock.now and job.owner == ledger.owner
        [row] = ledger.attempts(key(i))
        assert (row.id, row.kind, row.ended_at, row.outcome) == (attempt, "submit", None, None)
        assert attempt is not None and ledger.mark_running(key(i), attempt, task_id=f"t{i}", http_status=200)
    assert ledger.spent_usd() == pytest.approx(3 * PRICE)
    assert ledger.outstanding() == 3
    assert state(ledger, 3) is JobState.PENDING and ledger.attempts(key(3)) == []


def test_a_job_no_longer_pending_gets_none_and_the_others_still_move(ledger: LedgerBackend) -> None:
    """A refusal is per job, in place (``None``), and writes nothing for that job; the rest of the group moves."""
    running(ledger, 1)
    before = ledger.get(key(1))
    attempts = ledger.mark_submitting_many([key(0), key(1), key(2)])
    assert attempts[1] is None and attempts[0] is not None and attempts[2] is not None
    assert ledger.get(key(1)) == before and len(ledger.attempts(key(1))) == 1
    assert state(ledger, 0) is state(ledger, 2) is JobState.SUBMITTING
    assert ledger.spent_usd() == pytest.approx(3 * PRICE)  # the running one's and the two new reservations


def test_a_key_twice_in_one_group_is_submitted_once(ledger: LedgerBackend) -> None:
    attempts = ledger.mark_submitting_many([key(0), key(0)])
    assert attempts[0] is not None and attempts[1] is None
    assert len(ledger.attempts(key(0))) == 1 and ledger.spent_usd() == pytest.approx(PRICE)


def test_a_job_another_live_owner_claimed_is_refused_in_the_group(ledger: LedgerBackend) -> None:
    other = "other-host:1:abc"
    assert ledger.renew_lease(other)
    assert [job.key for job in ledger.claim_pending(1, other)] == [key(0)]
    attempts = ledger.mark_submitting_many([key(0), key(1)])
    assert attempts[0] is None and attempts[1] is not None
    job = ledger.get(key(0))
    assert job is not None and job.state is JobState.PENDING and job.owner == other


def test_an_unknown_key_fails_the_whole_group_and_writes_nothing(ledger: LedgerBackend) -> None:
    """A bug whatever the race (as for ``mark_submitting``): nothing of the group is written — all or none."""
    with pytest.raises(LedgerError):
        ledger.mark_submitting_many([key(0), "no-such-job", key(1)])
    assert state(ledger, 0) is state(ledger, 1) is JobState.PENDING
    assert ledger.attempts(key(0)) == [] and ledger.spent_usd() == 0


def test_an_empty_group_writes_nothing(ledger: LedgerBackend) -> None:
    assert ledger.mark_submitting_many([]) == []
    assert ledger.outstanding() == 0
