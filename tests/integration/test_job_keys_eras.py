"""Every era of job keys: a ledger planned by any earlier runner keeps its jobs under today's code.

``key_eras/<era>.json`` holds manifests (and the value files they read) with the jobs that era's
runner planned from them — key, model, repeat, output and the request it stored — computed by
that commit's own code (``computed_by``; the manifests' images are ``manifests/frames``). A change
to key derivation (canonical JSON, float formatting, the defaults an endpoint fills in, an input's
digest, model names, matrix order, text normalisation) fails here. Do not regenerate these files
to make a test pass: every ledger of that era would pay for its jobs again.

The eras (docs/architecture.md, "Job identity"):

* ``pre_nfc`` — 3d9924c (2026-11-24) to c1397a3^: text hashed as typed. A manifest whose text
  is all NFC keys as today; one with NFD text or an NFD salt keyed otherwise, and its ledger keeps
  those jobs when the manifest is planned again (``runner.ledger.twins``);
* ``nfc`` — c1397a3 (2026-12-03) on: text in NFC; today's keys, exactly;
* ``media`` — 809c1a4 (2026-12-03) on: the Kling v3.0 family and image inputs; today's keys, exactly;
* ``data_uri`` — 809c1a4 until they were refused: a ``data:`` URI typed in a manifest, keyed by its string. Its
  manifest is refused now; named as a file of the same bytes, as the refusal says, it keeps its jobs.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from runner.errors import ManifestError
from runner.jobs import JobSpec, JobState
from runner.ledger import open_ledger
from runner.manifest import Manifest, expand, load_manifest

ERAS = Path(__file__).parent / "key_eras"
REPO = Path(__file__).parents[2]


def _era(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ERAS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _cases(name: str) -> list[tuple[str, str]]:
    return [(name, manifest) for manifest in sorted(_era(name)["manifests"])]


def _load(tmp_path: Path, era: dict[str, Any], manifest: str) -> Manifest:
    for rel, text in era["files"].items():
        (tmp_path / rel).write_text(text, encoding="utf-8")
    if era["frames"] and not (tmp_path / "frames").exists():
        shutil.copytree(REPO / era["frames"], tmp_path / "frames")
    path = tmp_path / f"{manifest}.yaml"
    path.write_text(era["manifests"][manifest], encoding="utf-8")
    return load_manifest(path)


@pytest.mark.parametrize(("era", "manifest"), _cases("nfc") + _cases("media"))
def test_todays_keys_are_those_of_the_era(tmp_path: Path, era: str, manifest: str) -> None:
    """Since c1397a3 (and for media inputs since 809c1a4) every job keeps its key exactly."""
    data = _era(era)
    planned = data["planned"][manifest]
    now = [(job.key, job.repeat, job.model) for job in expand(_load(tmp_path, data, manifest))]
    assert now == [(job["key"], job["repeat"], job["model"]) for job in planned["jobs"]], (
        f"{manifest}: job keys differ from those {data['computed_by']} planned: a ledger of that era would pay again")


def _as_file(tmp_path: Path, spec: Manifest) -> Manifest:
    """The manifest with its data: URI written to a file and named instead, as the refusal says."""
    text = spec.path.read_text(encoding="utf-8")
    uri = text.split('image: "', 1)[1].split('"', 1)[0]
    (tmp_path / "image.png").write_bytes(base64.b64decode(uri.split(",", 1)[1]))
    spec.path.write_text(text.replace(uri, "image.png"), encoding="utf-8")
    return load_manifest(spec.path)


@pytest.mark.parametrize(("era", "manifest"), _cases("pre_nfc") + _cases("data_uri"))
def test_a_ledger_of_an_earlier_derivation_keeps_its_jobs(tmp_path: Path, era: str, manifest: str) -> None:
    """A ledger holding the era's jobs, all paid: planned again by today's code, no job is new, none dropped."""
    data = _era(era)
    old = [JobSpec(key=job["key"], model=job["model"], request=job["request"], vars={}, repeat=job["repeat"],
                   output=job["output"], estimated_usd=0.5) for job in data["planned"][manifest]["jobs"]]
    spec = _load(tmp_path, data, manifest)
    if era == "data_uri":
        with pytest.raises(ManifestError, match="Write the image to a file"):
            list(expand(spec))
        spec = _as_file(tmp_path, spec)
    with open_ledger(tmp_path / "state") as ledger:
        ledger.register(spec.name, "era", old)
        for n, job in enumerate(old):
            attempt = ledger.mark_submitting(job.key)
            assert attempt is not None
            ledger.mark_running(job.key, attempt, task_id=f"task-{n}", http_status=200)
        ledger.register(spec.name, spec.digest, expand(spec), salt=spec.salt)
        assert ledger.counts(spec.name) == {**dict.fromkeys(JobState, 0), JobState.RUNNING: len(old)}
        assert {job.key for job in ledger.iter_jobs(spec.name)} == {job.key for job in old}
        assert ledger.dropped_spent_usd(spec.name) == 0


def test_the_pre_nfc_era_holds_both_kinds_of_manifest() -> None:
    """The fixture covers manifests whose keys moved at c1397a3 and manifests whose keys did not (or it proves less)."""
    pre, nfc = _era("pre_nfc")["planned"], _era("nfc")["planned"]
    moved = {name for name in pre if [j["key"] for j in pre[name]["jobs"]] != [j["key"] for j in nfc[name]["jobs"]]}
    assert moved == {"escaped", "nfd_all", "nfd_salt", "nfd_text"}


@pytest.mark.parametrize(("era", "manifest"), _cases("pre_nfc") + _cases("data_uri"))
def test_plan_prices_no_job_of_an_earlier_derivation_as_one_to_submit(tmp_path: Path, era: str, manifest: str) -> None:
    """`runner plan` of a ledger holding the era's jobs, all paid: it looked each job up by today's key, found none
    and priced them all as to submit, where a run keeps the earlier jobs and pays for none; before the run plans the
    manifest again and after (each later plan too, the manifest unchanged), it now says what the run does."""
    from runner.service.planning import plan

    data = _era(era)
    old = [JobSpec(key=job["key"], model=job["model"], request=job["request"], vars={}, repeat=job["repeat"],
                   output=job["output"], estimated_usd=0.5) for job in data["planned"][manifest]["jobs"]]
    spec = _load(tmp_path, data, manifest)
    if era == "data_uri":
        spec = _as_file(tmp_path, spec)
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        ledger.register(spec.name, "era", old)
        for n, job in enumerate(old):
            attempt = ledger.mark_submitting(job.key)
            assert attempt is not None
            ledger.mark_running(job.key, attempt, task_id=f"task-{n}", http_status=200)
    for replanned in (False, True):
        if replanned:  # what the next run does first
            with open_ledger(state) as ledger:
                ledger.register(spec.name, spec.digest, expand(spec), salt=spec.salt)
        found = plan(spec.path, state)
        assert (found.to_submit, found.cost_new) == (0, 0.0), (replanned, found.counts)
        assert found.counts[str(JobState.RUNNING)] == len(old) == found.jobs
        rows: list[dict[str, Any]] = []
        plan(spec.path, state, each_job=rows.append)
        assert {row["state"] for row in rows} == {str(JobState.RUNNING)}
        assert sorted(row["key"] for row in rows) == sorted(job.key for job in old)
