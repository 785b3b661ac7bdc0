"""plan's forecast of wall time (issue 12, item 2b/2d): the arithmetic of runner.reporting.eta, the task
time learnt from the ledger, the warning when settings cannot finish in --max-runtime, and the
README's clips-a-night figures checked against the same function."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from runner.jobs import JobSpec
from runner.ledger import MemoryLedger
from runner.reporting.eta import (
    DEFAULT_TASK_SECONDS,
    Forecast,
    clips_within,
    forecast,
    forecast_dict,
    forecast_lines,
    typical_task_seconds,
    wall_seconds,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_wall_time_is_bound_by_concurrency_or_by_rate() -> None:
    assert wall_seconds(100, concurrency=10, rpm=None, task_seconds=60) == 600  # 10 waves of a minute
    assert wall_seconds(101, concurrency=10, rpm=None, task_seconds=60) == 660
    assert wall_seconds(100, concurrency=100, rpm=20, task_seconds=60) == 99 * 3 + 60  # one submit every 3 s
    assert wall_seconds(0, concurrency=4, rpm=20, task_seconds=60, outstanding=5) == 120, "running tasks hold slots"
    assert wall_seconds(0, concurrency=4, rpm=20, task_seconds=60) == 0


@given(window=st.integers(0, 48 * 3600), concurrency=st.integers(1, 200), rpm=st.sampled_from([None, 1, 6, 20, 600]),
       task=st.integers(1, 3600))
def test_clips_within_a_window_are_the_most_that_finish_in_it(window: int, concurrency: int, rpm: int | None,
                                                              task: int) -> None:
    n = clips_within(window, concurrency=concurrency, rpm=rpm, task_seconds=task)
    assert wall_seconds(n, concurrency=concurrency, rpm=rpm, task_seconds=task) <= window
    assert wall_seconds(n + 1, concurrency=concurrency, rpm=rpm, task_seconds=task) > window


def _ledger_with_done_jobs(spans: list[float], tmp_path: Path) -> MemoryLedger:
    now = [1000.0]
    ledger = MemoryLedger(state_dir=tmp_path, clock=lambda: now[0])
    jobs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"p{i}"}, vars={}, repeat=1,
                          output=f"{i}.mp4", estimated_usd=0.56) for i in range(len(spans))]
    ledger.register("m", "d", jobs)
    for job, span in zip(jobs, spans, strict=True):
        attempt = ledger.mark_submitting(job.key)
        assert attempt is not None and ledger.mark_running(job.key, attempt, task_id=f"t{job.key}", http_status=200)
        now[0] += span
        assert ledger.mark_succeeded(job.key, video_url="https://x/v", url_expires_at=None, debug={})
        assert ledger.mark_done(job.key, path=f"outputs/m/{job.output}", sha256="s", bytes=1)
    return ledger


def test_the_task_time_is_learnt_from_the_ledgers_done_jobs(tmp_path: Path) -> None:
    assert typical_task_seconds(MemoryLedger(state_dir=tmp_path)) == (DEFAULT_TASK_SECONDS, 0)
    ledger = _ledger_with_done_jobs([100.0, 140.0, 400.0], tmp_path)
    assert typical_task_seconds(ledger) == (140.0, 3)
    f = forecast(ledger, jobs=40, outstanding=0, concurrency=4, rpm=20, max_runtime=None)
    assert f.task_seconds == 140.0 and f.wall_seconds == 10 * 140.0 and f.fits is None
    assert forecast_dict(f)["task_seconds_learnt_from"] == 3


def test_plan_warns_when_the_settings_cannot_finish_in_max_runtime() -> None:
    f = Forecast(jobs=100, outstanding=0, concurrency=4, rpm=20, task_seconds=300, learnt_from=0, max_runtime=3600)
    assert f.wall_seconds == 25 * 300 and f.fits is False and f.within_max_runtime == 48
    first, warning = forecast_lines(f)
    assert first.startswith("would take about 2h05m (concurrency bound; concurrency 4, rpm 20, task time 5m00s")
    assert "default: no job done yet" in first
    assert warning.startswith("warning: that does not fit in --max-runtime 1h00m")
    assert "about 48 of 100 job(s) would finish" in warning
    roomy = Forecast(jobs=100, outstanding=0, concurrency=40, rpm=20, task_seconds=300, learnt_from=0,
                     max_runtime=3600)
    assert roomy.fits is True and len(forecast_lines(roomy)) == 1
    assert Forecast(jobs=100, outstanding=0, concurrency=100, rpm=6, task_seconds=60, learnt_from=0,
                    max_runtime=None).bound == "rpm"


RECIPE = re.compile(r"at concurrency (\d+), (\d+) RPM and a (\d+)-minute task, (\d+) hours make ([\d,]+) clips")


def test_the_readmes_clips_a_night_are_what_the_forecast_says() -> None:
    figures = RECIPE.findall(README.read_text(encoding="utf-8"))
    assert len(figures) >= 3, "the README's overnight figures are found"
    for concurrency, rpm, minutes, hours, clips in figures:
        made = clips_within(int(hours) * 3600, concurrency=int(concurrency), rpm=float(rpm),
                            task_seconds=int(minutes) * 60)
        assert made == int(clips.replace(",", "")), (concurrency, rpm, minutes, hours, clips)
    assert max(int(clips.replace(",", "")) for *_, clips in figures) >= 2000, "thousands of clips a night"
