"""A ledger planned under an older key derivation pays nothing again after the upgrade (runner.ledger.twins).

Before commit c1397a3 a job's key hashed the body and the salt exactly as the manifest spelled them
(:func:`legacy_key`, that code's ``job_key``); the ledger keeps the body it stored, never the salt.
Until data: URIs were refused in manifests, one typed there was hashed as its string; the same image
named as a file is hashed by its sha256. Both ledger backends that outlive a process run the same cases.
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import endpoints
from runner.jobs import JobSpec, JobState, job_key
from runner.ledger import LedgerBackend, open_ledger
from runner.ledger.postgres import open_postgres_ledger
from runner.testing import make_png

MODEL = "kling-v3.0-pro-t2v"
NFD = unicodedata.normalize("NFD", "café at dawn")
SALT_NFD = unicodedata.normalize("NFD", "crème")


def legacy_key(model: str, body: dict[str, Any], repeat: int, salt: str | None = None) -> str:
    """``job_key`` as of c1397a3^ (runner/jobs.py), verbatim: nothing normalised."""
    material = json.dumps({"model": model, "body": body, "repeat": repeat, "salt": salt or ""},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:20]


def legacy_spec(prompt: str, repeat: int = 1, output: str = "cafe.mp4", salt: str | None = None) -> JobSpec:
    """A job as runner planned it before NFC: the key hashes the text exactly as the manifest spelled it."""
    request = {"prompt": prompt, "duration": 5, "sound": False}
    return JobSpec(key=legacy_key(MODEL, request, repeat, salt), model=MODEL, request=request, vars={},
                   repeat=repeat, output=output, estimated_usd=0.56)


def current_spec(prompt: str, repeat: int = 1, output: str = "cafe.mp4", salt: str | None = None) -> JobSpec:
    return JobSpec.build(model=MODEL, request={"prompt": prompt, "duration": 5, "sound": False}, vars={},
                         repeat=repeat, output=output, estimated_usd=0.56, salt=salt)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerBackend]:
    if request.param == "sqlite":
        backend: LedgerBackend = open_ledger(tmp_path / "state")
    else:
        backend = open_postgres_ledger(request.getfixturevalue("pg_url"), tmp_path / "state")
    with backend:
        yield backend


def _paid(ledger: LedgerBackend, spec: JobSpec, task: str) -> None:
    attempt = ledger.mark_submitting(spec.key)
    assert attempt is not None
    ledger.mark_running(spec.key, attempt, task_id=task, http_status=200)


def test_a_job_planned_from_nfd_text_before_the_upgrade_keeps_its_task(ledger: LedgerBackend) -> None:
    """Re-planning the same manifest (edited elsewhere) maps the NFC job onto the paid pre-NFC one: no new pending job."""
    old, new = legacy_spec(NFD), current_spec(NFD)
    assert old.key != new.key  # the upgrade changed the key: without care this pays again
    ledger.register("m", "d1", [old, legacy_spec("ascii prompt", output="a.mp4")])
    _paid(ledger, old, "task-1")
    # The manifest is edited (a new job added): it is planned again by the new code.
    ledger.register("m", "d2", [new, current_spec("ascii prompt", output="a.mp4"),
                                current_spec("another", output="b.mp4")])
    assert ledger.counts("m") == {**dict.fromkeys(JobState, 0), JobState.RUNNING: 1, JobState.PENDING: 2}
    assert ledger.get(new.key) is None  # no second job for the same video
    assert ledger.get(old.key, "m") is not None
    assert ledger.spent_usd("m") == 0.56
    assert ledger.dropped_spent_usd("m") == 0


@pytest.mark.parametrize("typed_now", [SALT_NFD, unicodedata.normalize("NFC", SALT_NFD)], ids=["nfd", "nfc"])
def test_jobs_keyed_with_an_nfd_salt_keep_their_tasks(ledger: LedgerBackend, typed_now: str) -> None:
    """ASCII prompts, a salt typed in NFD: every key moved. Kept whether the salt is still NFD or was saved as NFC."""
    old = [legacy_spec(p, output=f"{i}.mp4", salt=SALT_NFD) for i, p in enumerate(("a fox", "an owl", NFD))]
    new = [current_spec(p, output=f"{i}.mp4", salt=typed_now) for i, p in enumerate(("a fox", "an owl", NFD))]
    assert not {spec.key for spec in old} & {spec.key for spec in new}
    ledger.register("m", "d1", old)
    for n, spec in enumerate(old):
        _paid(ledger, spec, f"task-{n}")
    ledger.register("m", "d2", new, salt=typed_now)
    assert ledger.counts("m") == {**dict.fromkeys(JobState, 0), JobState.RUNNING: 3}
    assert all(ledger.get(spec.key) is None for spec in new)
    # and again: the kept jobs stay kept at every later plan
    ledger.register("m", "d3", new, salt=typed_now)
    assert ledger.counts("m") == {**dict.fromkeys(JobState, 0), JobState.RUNNING: 3}


def test_a_new_salt_is_not_matched_to_jobs_of_the_old_salt(ledger: LedgerBackend) -> None:
    """An NFD prompt under salt take-1, then salt take-2 (fresh samples asked for): a new job, not the old one."""
    old, new = legacy_spec(NFD, salt="take-1"), current_spec(NFD, salt="take-2")
    ledger.register("m", "d1", [old])
    _paid(ledger, old, "task-1")
    ledger.register("m", "d2", [new], salt="take-2")
    assert ledger.get(new.key, "m") is not None
    assert ledger.get(old.key, "m") is None
    assert ledger.counts("m")[JobState.PENDING] == 1


def test_a_job_without_the_salt_it_was_keyed_with_is_not_taken(ledger: LedgerBackend) -> None:
    """Asked without the salt (an old caller), a job keyed with a salt proves nothing: it is left alone."""
    old, new = legacy_spec(NFD, salt=SALT_NFD), current_spec(NFD, salt=SALT_NFD)
    ledger.register("m", "d1", [old])
    ledger.register("m", "d2", [new])
    assert ledger.get(new.key, "m") is not None


def test_a_pre_nfc_job_of_another_manifest_is_not_taken(ledger: LedgerBackend) -> None:
    """Only the manifest's own earlier jobs are matched (another manifest may carry another salt)."""
    old, new = legacy_spec(NFD), current_spec(NFD)
    ledger.register("other", "d1", [old])
    ledger.register("m", "d1", [new])
    assert ledger.get(new.key, "m") is not None
    assert ledger.get(old.key, "other") is not None


I2V = "kling-v3.0-pro-i2v"
PNG = make_png(640, 360, seed=4)
URI = "data:image/png;base64," + base64.b64encode(PNG).decode()


def i2v_spec(image: Any, prompt: str = "slow zoom", salt: str | None = None) -> JobSpec:
    """An image-to-video job keyed as expand keys it: its endpoint's identity body (a data: URI: its string)."""
    request = {"image": image, "prompt": prompt, "duration": 5, "cfg_scale": 0.5, "sound": False}
    key = job_key(I2V, endpoints.get(I2V).identity_body(request), 1, salt)
    return JobSpec(key=key, model=I2V, request=request, vars={}, repeat=1, output=f"{prompt}.mp4", estimated_usd=0.56)


def file_ref(data: bytes, name: str = "a.png") -> dict[str, Any]:
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": "image",
            "mime": "image/png"}


@pytest.mark.parametrize("salt", [None, "take-2"])
def test_a_job_planned_from_a_data_uri_keeps_its_task_once_the_image_is_a_file(ledger: LedgerBackend,
                                                                                salt: str | None) -> None:
    """The manifest's data: URI (refused now) written to a file, as the refusal says: the paid job is kept."""
    old, new = i2v_spec(URI, salt=salt), i2v_spec(file_ref(PNG), salt=salt)
    assert old.key != new.key
    ledger.register("m", "d1", [old, i2v_spec(URI, prompt="orbit", salt=salt)])
    _paid(ledger, old, "task-1")
    ledger.register("m", "d2", [new, i2v_spec(file_ref(PNG), prompt="orbit", salt=salt)], salt=salt)
    assert ledger.get(new.key) is None
    assert ledger.counts("m") == {**dict.fromkeys(JobState, 0), JobState.RUNNING: 1, JobState.PENDING: 1}


def test_another_image_or_salt_is_not_a_data_uri_twin(ledger: LedgerBackend) -> None:
    """A file of other bytes, or the same file under another salt, is a new job."""
    old = i2v_spec(URI)
    ledger.register("m", "d1", [old])
    ledger.register("n", "d1", [old])
    _paid(ledger, old, "task-1")
    ledger.register("m", "d2", [i2v_spec(file_ref(make_png(640, 360, seed=5)))])
    assert ledger.counts("m")[JobState.PENDING] == 1 and ledger.get(old.key, "m") is None
    ledger.register("n", "d2", [i2v_spec(file_ref(PNG), salt="take-2")], salt="take-2")
    assert ledger.counts("n")[JobState.PENDING] == 1 and ledger.get(old.key, "n") is None


def test_jobs_dropped_by_a_plan_that_missed_them_are_taken_back(ledger: LedgerBackend) -> None:
    """A runner between c1397a3 and the salt's fix planned the NFD-salt manifest again and dropped its paid jobs for
    new twins; before those were sent, today's plan takes the paid jobs back."""
    old = [legacy_spec(p, output=f"{i}.mp4", salt=SALT_NFD) for i, p in enumerate(("a fox", "an owl"))]
    new = [current_spec(p, output=f"{i}.mp4", salt=SALT_NFD) for i, p in enumerate(("a fox", "an owl"))]
    ledger.register("m", "d1", old)
    for n, spec in enumerate(old):
        _paid(ledger, spec, f"task-{n}")
    ledger.register("m", "d2", new)  # the salt not given: as that runner planned, its paid jobs dropped
    assert ledger.counts("m")[JobState.PENDING] == 2
    ledger.register("m", "d3", new, salt=SALT_NFD)
    assert ledger.counts("m") == {**dict.fromkeys(JobState, 0), JobState.RUNNING: 2}
    assert ledger.dropped_spent_usd("m") == 0
