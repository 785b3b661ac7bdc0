"""`runner plan --deadline WHEN` (issue 12, item 2): WHEN read against an injected "now" (never wall time), and
the forecast's verdict — finishes before it, or how many jobs by then and which setting binds."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from runner.cli.deadline import parse_deadline
from runner.errors import UsageError
from runner.reporting.eta import Deadline, Forecast, forecast_dict, forecast_lines

UTC = dt.UTC
PARIS_WINTER = dt.timezone(dt.timedelta(hours=1))
NOW = dt.datetime(2026, 12, 3, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize(("text", "at"), [
    ("2026-12-04T07:00", dt.datetime(2026, 12, 4, 7, 0, tzinfo=UTC)),          # naive: now's time zone
    ("2026-12-04 07:00:30", dt.datetime(2026, 12, 4, 7, 0, 30, tzinfo=UTC)),
    ("2026-12-04T07:00+01:00", dt.datetime(2026, 12, 4, 6, 0, tzinfo=UTC)),    # an explicit offset wins
    ("2026-12-04T07:00Z", dt.datetime(2026, 12, 4, 7, 0, tzinfo=UTC)),
    ("07:00", dt.datetime(2026, 12, 4, 7, 0, tzinfo=UTC)),                     # HH:MM: the next 07:00 (tomorrow)
    ("23:15", dt.datetime(2026, 12, 3, 23, 15, tzinfo=UTC)),                   # … or later today
    ("22:30", dt.datetime(2026, 12, 4, 22, 30, tzinfo=UTC)),                   # now itself is not "next"
    ("8h", NOW + dt.timedelta(hours=8)),
    ("1h30m", NOW + dt.timedelta(minutes=90)),
    ("90m", NOW + dt.timedelta(minutes=90)),
    ("1.5h", NOW + dt.timedelta(minutes=90)),
    ("2d", NOW + dt.timedelta(days=2)),
    ("45s", NOW + dt.timedelta(seconds=45)),
])
def test_when_is_an_iso_time_the_next_hh_mm_or_a_duration(text: str, at: dt.datetime) -> None:
    deadline = parse_deadline(text, now=NOW)
    assert deadline.at == at and deadline.seconds == (at - NOW).total_seconds()


def test_hh_mm_is_read_in_nows_time_zone() -> None:
    now = NOW.astimezone(PARIS_WINTER)  # 23:30 in Paris
    deadline = parse_deadline("07:00", now=now)
    assert deadline.at == dt.datetime(2026, 12, 4, 7, 0, tzinfo=PARIS_WINTER) and deadline.seconds == 7.5 * 3600


@pytest.mark.parametrize(("text", "words"), [
    ("2026-12-03T22:00", "is in the past"),
    ("0h", "is in the past"),
    ("tomorrow", "an ISO time (2026-12-04T07:00), HH:MM (the next 07:00) or a duration (8h, 1h30m, 90m)"),  # the next 07:00 after NOW
    ("25:00", "an ISO time"),
    ("8", "an ISO time"),
    ("", "an ISO time"),
])
def test_a_bad_or_past_deadline_is_a_usage_error_naming_it(text: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_deadline(text, now=NOW)
    assert f"--deadline {text!r}" in str(caught.value) and words in str(caught.value)


def _forecast(*, concurrency: int, rpm: float | None, hours: float) -> Forecast:
    deadline = Deadline(at=NOW + dt.timedelta(hours=hours), seconds=hours * 3600)
    return Forecast(jobs=500, outstanding=0, concurrency=concurrency, rpm=rpm, task_seconds=300, learnt_from=0,
                    max_runtime=None, deadline=deadline)


def test_a_forecast_that_misses_the_deadline_says_how_many_jobs_by_then_and_what_binds() -> None:
    """500 jobs of 5 min at concurrency 4 need ~10h25m; by a deadline 8 h away, 4 × 96 = 384 are done."""
    f = _forecast(concurrency=4, rpm=20, hours=8)
    assert f.fits_deadline is False and f.within_deadline == 384 and f.bound == "concurrency"
    lines = forecast_lines(f)
    assert lines[-1] == ("warning: that does not finish by the deadline 2026-12-04 06:30 UTC (in 8h00m): about 384"
                         " of 500 job(s) would be done by then; concurrency (4) binds: raise --concurrency (if the"
                         " account allows it), or start earlier")
    assert forecast_dict(f)["deadline"] == {"at": "2026-12-04T06:30:00+00:00", "seconds": 28800.0, "fits": False,
                                            "jobs_by_deadline": 384, "bound": "concurrency"}


def test_an_rpm_bound_miss_names_rpm() -> None:
    """At concurrency 100 and 6 submits a minute, the rate binds: 6 × 60 × 1h − … jobs by a 1-hour deadline."""
    f = _forecast(concurrency=100, rpm=6, hours=1)
    assert f.fits_deadline is False and f.within_deadline == 331 and f.bound == "rpm"
    assert "about 331 of 500 job(s) would be done by then; rpm (6) binds: raise --rpm" in forecast_lines(f)[-1]


def test_a_forecast_that_fits_says_so_with_the_time_to_spare() -> None:
    f = _forecast(concurrency=40, rpm=None, hours=8)
    assert f.fits_deadline is True and f.within_deadline == 500
    assert forecast_lines(f)[-1] == ("deadline 2026-12-04 06:30 UTC (in 8h00m): the estimate finishes before it,"
                                     " with about 6h55m to spare")
    assert forecast_dict(f)["deadline"]["fits"] is True


def test_without_a_deadline_nothing_is_said() -> None:
    f = Forecast(jobs=500, outstanding=0, concurrency=4, rpm=20, task_seconds=300, learnt_from=0, max_runtime=None)
    assert f.fits_deadline is None and forecast_dict(f)["deadline"] is None
    assert not any("deadline" in line for line in forecast_lines(f))


@pytest.mark.parametrize("text", ["2026-12-03T22:00", "tomorrow"])
def test_the_iso_time_a_refusal_gives_as_an_example_is_ahead(text: str) -> None:
    """The refusal of a past or unreadable deadline gave '2026-12-04T07:00' as its ISO example, fixed: from
    2026-12-04 07:00 on, that example was refused as past too (the README walk, 2026-12-05: README's own example
    `--deadline 2026-12-04T07:00` was). The example is the next 07:00, and is accepted as given."""
    for now in (NOW, NOW + dt.timedelta(days=400)):
        with pytest.raises(UsageError) as caught:
            parse_deadline(text if text == "tomorrow" else (now - dt.timedelta(hours=1)).isoformat(), now=now)
        example = re.search(r"an ISO time \((\S+)\)", str(caught.value))
        assert example is not None, str(caught.value)
        assert parse_deadline(example.group(1), now=now).seconds <= 24 * 3600, example.group(1)
