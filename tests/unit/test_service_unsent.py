"""reopen_unsent: a job failed unsent because an input changed is planned again, only if it was never sent."""

from __future__ import annotations

from runner.jobs import JobSpec, JobState
from runner.ledger import MemoryLedger
from runner.service.outcome import Notice
from runner.service.unsent import reopen_unsent


def _spec(prompt: str) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": prompt, "duration": 5}, vars={}, repeat=1,
                         output=f"{prompt}.mp4", estimated_usd=0.0)  # a price of 0: spend alone cannot tell


def test_only_a_job_never_sent_is_planned_again() -> None:
    ledger = MemoryLedger()
    never, refused_once = _spec("never"), _spec("refused")
    ledger.register("m", "d", [never, refused_once])
    attempt = ledger.mark_submitting(refused_once.key)  # sent once, refused (nothing created), pending again
    assert attempt is not None
    ledger.mark_refused(refused_once.key, attempt, http_status=429, reason=None, message="slow", permanent=False)
    for spec in (never, refused_once):
        assert ledger.fail_unsent(spec.key, reason="input frames/a.png changed since the plan")
    said: list[Notice] = []
    assert reopen_unsent(ledger, "m", said.append) == 1
    assert ledger.get(never.key).state is JobState.PENDING  # type: ignore[union-attr]
    assert ledger.get(refused_once.key).state is JobState.FAILED  # type: ignore[union-attr]
    assert len(said) == 1 and "planned again" in said[0].text
    assert reopen_unsent(ledger, "m", said.append) == 0 and len(said) == 1
