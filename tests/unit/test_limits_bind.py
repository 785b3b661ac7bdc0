"""Issue 14: no default limit caps a large account silently, and `runner plan` names the one that binds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner.config import DEFAULTS, RunSettings
from runner.engine import EngineConfig
from runner.service.limits_bind import binding_limit, binding_text
from runner.service.planning import plan

DEMO = Path(__file__).resolve().parents[2] / "manifests" / "demo.yaml"


def test_defaults_cap_neither_polls_nor_downloads() -> None:
    """Polls follow due times (no fixed poll_rpm); downloads and polls in flight follow concurrency."""
    assert DEFAULTS.poll_rpm is None
    assert DEFAULTS.downloads is None
    big = EngineConfig.from_settings(RunSettings(concurrency=1000, rpm=None), manifest="m")
    assert big.download_workers == 125  # one per 8 slots: keeps up with downloads up to T / 8 long
    assert big.polls_in_flight == 1000
    small = EngineConfig.from_settings(RunSettings(concurrency=2, downloads=3), manifest="m")
    assert (small.download_workers, small.polls_in_flight) == (3, 16)


@pytest.mark.parametrize(("settings", "name"), [
    (RunSettings(), "concurrency"),
    (RunSettings(concurrency=200, rpm=None), "concurrency"),  # a large account: no default binds below it
    (RunSettings(concurrency=200, rpm=30), "rpm"),  # 200 tasks of ~300 s: 40 jobs a minute; rpm 30 is less
    (RunSettings(concurrency=1000, rpm=None, poll_rpm=120), "poll_rpm"),
    (RunSettings(concurrency=200, rpm=None, downloads=2), "downloads"),
])
def test_the_smallest_limit_binds(settings: RunSettings, name: str) -> None:
    binding = binding_limit(settings)
    assert binding["name"] == name
    assert binding_text(binding).startswith(f"throughput: {name} (")


def test_plan_json_names_the_binding_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("RUNNER_CONCURRENCY", "RUNNER_RPM", "RUNNER_POLL_RPM", "RUNNER_DOWNLOADS"):
        monkeypatch.delenv(variable, raising=False)
    manifest = tmp_path / "demo.yaml"
    shutil.copy(DEMO, manifest)
    summary = plan(manifest, tmp_path / "state").as_dict()
    assert summary["binding_limit"]["name"] == "concurrency"
    monkeypatch.setenv("RUNNER_CONCURRENCY", "500")
    monkeypatch.setenv("RUNNER_RPM", "none")
    monkeypatch.setenv("RUNNER_POLL_RPM", "100")
    assert plan(manifest, tmp_path / "state").as_dict()["binding_limit"]["name"] == "poll_rpm"


def test_the_binding_line_uses_the_forecast_s_task_time(tmp_path: Path) -> None:
    """plan's throughput line and its forecast assume one task time (they disagreed: 60 s against 300 s)."""
    state = tmp_path / "state"
    summary = plan(DEMO, state).as_dict()
    assert summary["forecast"] is not None
    assert summary["binding_limit"]["assumed"]["task_seconds"] == summary["forecast"]["task_seconds"]


def test_a_huge_concurrency_starts_a_bounded_number_of_download_workers() -> None:
    """`--concurrency 1000000000` (or `limits: {concurrency: 1e9}` in a manifest from elsewhere) started one download
    worker per 8 slots up front, 125 million tasks: the run grew past 4 GB, never submitted and did not stop on
    SIGTERM. Derived from the concurrency, downloads stop at MAX_DOWNLOADS (an explicit --downloads above it is
    refused); the benchmarks' "no concurrency bound", 1 000 000, starts that many, not 125 000."""
    from runner.config import MAX_DOWNLOADS

    for concurrency in (10**6, 10**9, int(1e300)):
        config = EngineConfig.from_settings(RunSettings(concurrency=concurrency, rpm=None), manifest="m")
        assert config.download_workers == MAX_DOWNLOADS == 1024
    assert EngineConfig.from_settings(RunSettings(concurrency=8000, rpm=None), manifest="m").download_workers == 1000


def test_plan_says_downloads_bind_at_the_most_runner_starts() -> None:
    """Issue 14: a limit that binds a large account is named, and one no setting lifts says so — downloads at once
    stop at MAX_DOWNLOADS (derived from a concurrency of 100 000 they would be 12 500), and `plan` said only
    "downloads (1024) binds", sending the operator to a --downloads that cannot go higher."""
    line = binding_text(binding_limit(RunSettings(concurrency=100_000, rpm=None)))
    assert line.startswith("throughput: downloads (1024, the most runner starts at once) binds"), line
    assert "the most" not in binding_text(binding_limit(RunSettings(concurrency=200, rpm=None, downloads=2)))


def test_plan_s_forecast_names_the_limit_the_throughput_line_names(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`runner plan --concurrency 100000`: the throughput line said downloads bind (1024 workers, the most runner
    starts) while the forecast line said "concurrency bound" and timed the run as if 100 000 slots were the pace;
    the forecast now paces by every limit the throughput line weighs, and names the same one."""
    for variable in ("RUNNER_RPM", "RUNNER_POLL_RPM", "RUNNER_DOWNLOADS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("RUNNER_CONCURRENCY", "100000")
    monkeypatch.setenv("RUNNER_RPM", "none")
    manifest = tmp_path / "demo.yaml"
    shutil.copy(DEMO, manifest)
    summary = plan(manifest, tmp_path / "state").as_dict()
    assert summary["binding_limit"]["name"] == "downloads"
    assert summary["forecast"]["bound"] == "downloads"
    jobs = summary["forecast"]["jobs"]
    per_minute = summary["binding_limit"]["jobs_per_minute"]
    assert summary["forecast"]["wall_seconds"] >= round(jobs * 60 / per_minute, 1)


def test_the_throughput_line_rounds_a_measured_task_time() -> None:
    """A median of done tasks (1.06514 s) read "tasks of ~1.06514 s" in `runner plan` (brief Q): a figure said to
    about 3 digits, as the rates beside it are."""
    line = binding_text(binding_limit(RunSettings(), task_seconds=1.0651428))
    assert "tasks of ~1.07 s" in line, line
    assert "tasks of ~300 s" in binding_text(binding_limit(RunSettings())), binding_text(binding_limit(RunSettings()))
    assert "tasks of ~1235 s" in binding_text(binding_limit(RunSettings(), task_seconds=1234.56))
