"""The example manifests shipped in manifests/ load, expand and fit their budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.manifest import count_jobs, expand, load_manifest

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

EXPECTED_JOBS = {"demo.yaml": 7, "cities.yaml": 42, "multi-shot.yaml": 6, "bulk-csv.yaml": 100,
                 "draft-to-final.yaml": 6, "animate-folder.yaml": 6, "first-last-frame.yaml": 2,
                 "motion-control.yaml": 2}


def test_every_example_is_listed() -> None:
    """Each manifests/*.yaml is covered by this test module."""
    assert sorted(path.name for path in MANIFESTS.glob("*.yaml")) == sorted(EXPECTED_JOBS)


@pytest.mark.parametrize("name", sorted(EXPECTED_JOBS))
def test_example_loads_expands_and_fits_its_budget(name: str) -> None:
    """The example expands to its documented job count and its estimate fits budget_usd."""
    manifest = load_manifest(MANIFESTS / name)
    jobs = list(expand(manifest))
    assert len(jobs) == count_jobs(manifest) == EXPECTED_JOBS[name]
    assert manifest.limits.budget_usd is not None
    assert sum(job.estimated_usd for job in jobs) <= manifest.limits.budget_usd
    assert len({job.key for job in jobs}) == len({job.output for job in jobs}) == len(jobs)


def test_demo_is_small_and_quick_to_run() -> None:
    """The demo stays within 6-12 jobs, concurrency 4 and an rpm that does not throttle it."""
    manifest = load_manifest(MANIFESTS / "demo.yaml")
    assert 6 <= count_jobs(manifest) <= 12
    assert manifest.limits.concurrency == 4 and (manifest.limits.rpm or 0) >= 60


def test_bulk_example_uses_per_row_durations() -> None:
    """bulk-csv.yaml takes each row's duration from the CSV and crosses two aspect ratios."""
    jobs = list(expand(load_manifest(MANIFESTS / "bulk-csv.yaml")))
    assert {job.request["duration"] for job in jobs} == {5, 8, 10}
    assert {job.request["aspect_ratio"] for job in jobs} == {"16:9", "9:16"}


def test_multi_shot_example_sums_its_shots() -> None:
    """multi-shot.yaml's shots add up to the video duration, with rendered prompts."""
    for job in expand(load_manifest(MANIFESTS / "multi-shot.yaml")):
        shots = job.request["multi_prompt"]
        assert sum(shot["duration"] for shot in shots) == job.request["duration"]
        assert all("{" not in shot["prompt"] for shot in shots)
