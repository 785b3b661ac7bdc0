"""Run settings: flag > environment > manifest > default, and a clear error for every bad value."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from runner.config import MAX_DOWNLOADS, RunSettings, resolve_settings
from runner.errors import UsageError

SETTINGS = ["concurrency", "rpm", "poll_rpm", "poll_interval", "downloads", "budget_usd", "in_doubt", "max_runtime",
            "read_timeout", "download_timeout", "download_max_bytes"]
ENV = {
    "concurrency": "RUNNER_CONCURRENCY",
    "rpm": "RUNNER_RPM",
    "poll_rpm": "RUNNER_POLL_RPM",
    "poll_interval": "RUNNER_POLL_INTERVAL",
    "downloads": "RUNNER_DOWNLOADS",
    "budget_usd": "RUNNER_BUDGET_USD",
    "in_doubt": "RUNNER_IN_DOUBT",
    "max_runtime": "RUNNER_MAX_RUNTIME",
    "read_timeout": "RUNNER_READ_TIMEOUT",
    "download_timeout": "RUNNER_DOWNLOAD_TIMEOUT",
    "download_max_bytes": "RUNNER_DOWNLOAD_MAX_BYTES",
}
# Three distinct valid values per setting: what the flag, the environment and the manifest say.
FLAG_V: dict[str, Any] = {"concurrency": 7, "rpm": "33", "poll_rpm": "44", "poll_interval": 0.7, "downloads": 5,
                          "budget_usd": 7.5, "in_doubt": "resubmit", "max_runtime": 70.0, "read_timeout": 7,
                          "download_timeout": 17, "download_max_bytes": 1700}
ENV_V = {"concurrency": "6", "rpm": "22", "poll_rpm": "66", "poll_interval": "0.6", "downloads": "3",
         "budget_usd": "6.5", "in_doubt": "hold", "max_runtime": "60", "read_timeout": "6.5",
         "download_timeout": "16.5", "download_max_bytes": "1600"}
MANIFEST_V: dict[str, Any] = {"concurrency": 5, "rpm": 11.0, "poll_rpm": 55.0, "poll_interval": 0.5, "downloads": 2,
                              "budget_usd": 5.5, "in_doubt": "resubmit", "max_runtime": 50.0, "read_timeout": 5.0,
                              "download_timeout": 15.0, "download_max_bytes": 1500}
EXPECT = {
    "flag": {"concurrency": 7, "rpm": 33.0, "poll_rpm": 44.0, "poll_interval": 0.7, "downloads": 5,
             "budget_usd": 7.5, "in_doubt": "resubmit", "max_runtime": 70.0, "read_timeout": 7.0,
             "download_timeout": 17.0, "download_max_bytes": 1700},
    "env": {"concurrency": 6, "rpm": 22.0, "poll_rpm": 66.0, "poll_interval": 0.6, "downloads": 3,
            "budget_usd": 6.5, "in_doubt": "hold", "max_runtime": 60.0, "read_timeout": 6.5,
            "download_timeout": 16.5, "download_max_bytes": 1600},
    "manifest": MANIFEST_V,
    "default": {name: getattr(RunSettings(), name) for name in SETTINGS},
}


def _resolve(flags: dict[str, Any] | None = None, environ: dict[str, str] | None = None,
             manifest: dict[str, Any] | None = None) -> RunSettings:
    return resolve_settings(flags=flags or {}, environ=environ or {}, manifest=manifest or {})


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("winner", ["flag", "env", "manifest", "default"])
def test_precedence_is_flag_then_env_then_manifest_then_default(name: str, winner: str) -> None:
    """Each setting takes the highest source that says something: flag > env > manifest > default."""
    order = ["flag", "env", "manifest", "default"]
    present = order[order.index(winner):]
    flags = {name: FLAG_V[name]} if "flag" in present else {name: None}
    environ = {ENV[name]: ENV_V[name]} if "env" in present else {}
    manifest = {name: MANIFEST_V[name]} if "manifest" in present else {}
    settings = _resolve(flags, environ, manifest)
    assert getattr(settings, name) == EXPECT[winner][name]


def test_sources_mix_per_setting() -> None:
    """Different settings may come from different sources in one run."""
    settings = _resolve(
        flags={"concurrency": 9, "rpm": None},
        environ={"RUNNER_RPM": "12", "RUNNER_CONCURRENCY": "2"},
        manifest={"rpm": 5.0, "budget_usd": 3.0, "concurrency": 1},
    )
    assert (settings.concurrency, settings.rpm, settings.budget_usd, settings.poll_interval) == (9, 12.0, 3.0, 3.0)


def test_defaults_without_any_source() -> None:
    """With no flag, variable or manifest limit, the documented defaults apply."""
    assert _resolve() == RunSettings(concurrency=4, rpm=20.0, poll_rpm=None, poll_interval=3.0, downloads=None,
                                     budget_usd=None, in_doubt="hold", max_runtime=None, read_timeout=60.0)


@pytest.mark.parametrize("text", ["none", "None", "off", "unlimited", "null"])
def test_none_lifts_a_liftable_limit(text: str) -> None:
    """'none' (or off/unlimited) from a flag or the environment means no rate cap."""
    assert _resolve(flags={"rpm": text}).rpm is None
    assert _resolve(environ={"RUNNER_POLL_RPM": text}, manifest={"poll_rpm": 30.0}).poll_rpm is None


def test_manifest_null_means_no_cap_for_nullable_settings() -> None:
    """`limits: {rpm: null}` in a manifest lifts the cap rather than falling back to the default."""
    assert _resolve(manifest={"rpm": None, "budget_usd": None}).rpm is None


def test_manifest_null_for_a_required_setting_falls_back_to_the_default() -> None:
    """A manifest value of null for concurrency means "not said", not an error."""
    assert _resolve(manifest={"concurrency": None, "in_doubt": None}).concurrency == 4


def test_blank_environment_variable_counts_as_unset() -> None:
    """`RUNNER_RPM=` (blank, as cron lines often leave it) never lifts the rate limit."""
    settings = _resolve(environ={"RUNNER_RPM": "", "RUNNER_CONCURRENCY": "  "}, manifest={"rpm": 15.0})
    assert settings.rpm == 15.0
    assert settings.concurrency == 4


def test_budget_of_zero_is_allowed() -> None:
    """--budget 0 is a valid (if stingy) budget: submit nothing."""
    assert _resolve(flags={"budget_usd": 0}).budget_usd == 0


@pytest.mark.parametrize(
    ("flags", "environ", "manifest", "names"),
    [
        ({"concurrency": 0}, {}, {}, "--concurrency"),
        ({"concurrency": -1}, {}, {}, "--concurrency"),
        ({"rpm": "fast"}, {}, {}, "--rpm"),
        ({"rpm": "nan"}, {}, {}, "--rpm"),
        ({"rpm": "inf"}, {}, {}, "--rpm"),
        ({"budget_usd": -1.0}, {}, {}, "--budget"),
        ({"budget_usd": float("nan")}, {}, {}, "--budget"),
        ({"max_runtime": 0.0}, {}, {}, "--max-runtime"),
        ({"poll_interval": "none"}, {}, {}, "--poll-interval"),
        ({"in_doubt": "pay"}, {}, {}, "--in-doubt"),
        ({}, {"RUNNER_CONCURRENCY": "2.5"}, {}, "RUNNER_CONCURRENCY"),
        ({}, {"RUNNER_DOWNLOADS": "many"}, {}, "RUNNER_DOWNLOADS"),
        ({}, {"RUNNER_IN_DOUBT": "maybe"}, {}, "RUNNER_IN_DOUBT"),
        ({}, {"RUNNER_BUDGET_USD": "-3"}, {}, "RUNNER_BUDGET_USD"),
        ({}, {"RUNNER_READ_TIMEOUT": "soon"}, {}, "RUNNER_READ_TIMEOUT"),
        ({}, {"RUNNER_READ_TIMEOUT": "none"}, {}, "RUNNER_READ_TIMEOUT"),
        ({}, {}, {"concurrency": True}, "manifest limits.concurrency"),
        ({}, {}, {"poll_interval": 0}, "manifest limits.poll_interval"),
    ],
)
def test_bad_values_name_their_source(flags: dict[str, Any], environ: dict[str, str],
                                      manifest: dict[str, Any], names: str) -> None:
    """A bad value fails with a UsageError naming the flag, variable or manifest key it came from."""
    with pytest.raises(UsageError) as info:
        _resolve(flags, environ, manifest)
    assert str(info.value).startswith(f"{names}:"), str(info.value)


@pytest.mark.parametrize(
    ("flags", "environ", "manifest", "names"),
    [
        ({}, {"RUNNER_DOWNLOADS": "2000"}, {}, "RUNNER_DOWNLOADS"),
        ({}, {}, {"downloads": 1e9}, "manifest limits.downloads"),  # a download worker each: memory ran out
        ({"downloads": 1025}, {}, {}, "--downloads"),
    ],
)
def test_downloads_past_the_most_run_at_the_most_and_say_so(flags: dict[str, Any], environ: dict[str, str],
                                                            manifest: dict[str, Any], names: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """More downloads at once than runner starts (MAX_DOWNLOADS) were taken until 2026-12-05, then refused (exit 2):
    a nightly batch whose RUNNER_DOWNLOADS or limits.downloads said 2000 stopped — `collect` too, its paid videos
    left on the provider's short-lived URLs — for a setting that only asks for more than runner gives. It runs at
    the most, and says so naming where the number came from."""
    with caplog.at_level(logging.WARNING, logger="runner"):
        assert _resolve(flags, environ, manifest).downloads == MAX_DOWNLOADS == 1024
    assert names in caplog.text and "1,024" in caplog.text, caplog.text


def test_a_bad_lower_source_is_ignored_when_a_higher_one_wins() -> None:
    """Only the winning source is read: a stale bad variable does not break a run given the flag."""
    assert _resolve(flags={"concurrency": 3}, environ={"RUNNER_CONCURRENCY": "lots"}).concurrency == 3


def test_whole_float_is_accepted_for_an_integer_setting() -> None:
    """A YAML or environment value of 4.0 is a fine concurrency of 4 (and an int)."""
    settings = _resolve(environ={"RUNNER_DOWNLOADS": "2.0"}, manifest={"concurrency": 4.0})
    assert settings.concurrency == 4 and isinstance(settings.concurrency, int)
    assert settings.downloads == 2 and isinstance(settings.downloads, int)
