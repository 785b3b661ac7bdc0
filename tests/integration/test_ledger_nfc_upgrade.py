"""A ledger planned before text was normalised to NFC pays nothing again after the upgrade (issue 9, item 3)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from runner.jobs import JobSpec, JobState, job_key
from runner.ledger import open_ledger

MODEL = "kling-v3.0-pro-t2v"
NFD = unicodedata.normalize("NFD", "café at dawn")


def legacy_spec(prompt: str, repeat: int = 1, output: str = "cafe.mp4") -> JobSpec:
    """A job as runner planned it before NFC: the key hashes the text exactly as the manifest spelled it."""
    request = {"prompt": prompt, "duration": 5, "sound": False}
    return JobSpec(key=job_key(MODEL, request, repeat), model=MODEL, request=request, vars={}, repeat=repeat,
                   output=output, estimated_usd=0.56)


def current_spec(prompt: str, repeat: int = 1, output: str = "cafe.mp4") -> JobSpec:
    return JobSpec.build(model=MODEL, request={"prompt": prompt, "duration": 5, "sound": False}, vars={},
                         repeat=repeat, output=output, estimated_usd=0.56)


def test_a_job_planned_from_nfd_text_before_the_upgrade_keeps_its_task(tmp_path: Path) -> None:
    """Re-planning the same manifest (edited elsewhere) maps the NFC job onto the paid pre-NFC one: no new pending job."""
    old, new = legacy_spec(NFD), current_spec(NFD)
    assert old.key != new.key  # the upgrade changed the key: without care this pays again
    with open_ledger(tmp_path / "state") as ledger:
        ledger.register("m", "d1", [old, legacy_spec("ascii prompt", output="a.mp4")])
        attempt = ledger.mark_submitting(old.key)
        ledger.mark_running(old.key, attempt, task_id="task-1", http_status=200)
        # The manifest is edited (a new job added): it is planned again by the new code.
        ledger.register("m", "d2", [new, current_spec("ascii prompt", output="a.mp4"),
                                    current_spec("another", output="b.mp4")])
        assert ledger.counts("m") == {**dict.fromkeys(JobState, 0), JobState.RUNNING: 1, JobState.PENDING: 2}
        assert ledger.get(new.key) is None  # no second job for the same video
        assert ledger.get(old.key, "m") is not None
        assert ledger.spent_usd("m") == 0.56
        assert ledger.dropped_spent_usd("m") == 0


def test_a_pre_nfc_job_of_another_manifest_is_not_taken(tmp_path: Path) -> None:
    """Only the manifest's own earlier jobs are matched (another manifest may carry another salt)."""
    old, new = legacy_spec(NFD), current_spec(NFD)
    with open_ledger(tmp_path / "state") as ledger:
        ledger.register("other", "d1", [old])
        ledger.register("m", "d1", [new])
        assert ledger.get(new.key, "m") is not None
        assert ledger.get(old.key, "other") is not None
