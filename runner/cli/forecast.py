"""``plan``'s forecast of wall time: its options (``--concurrency``, ``--rpm``, ``--max-runtime``, read
like ``run``'s: flag > environment > manifest > default) and the figures (:mod:`runner.reporting.eta`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from runner.config import BY_NAME, RunSettings, default_text, resolve_settings
from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.manifest import Manifest
from runner.reporting.eta import Forecast, forecast

__all__ = ["FORECAST_SETTINGS", "forecast_options", "plan_forecast"]

F = TypeVar("F", bound=Callable[..., Any])
FORECAST_SETTINGS = ("concurrency", "rpm", "max_runtime")


def forecast_options(func: F) -> F:
    """The settings the forecast reads, as ``run`` takes them (text, read by :func:`resolve_settings`)."""
    for name in reversed(FORECAST_SETTINGS):
        setting = BY_NAME[name]
        assert setting.flag is not None
        func = click.option(setting.flag, name, default=None, metavar="NUMBER" + ("" if name == "concurrency" else "|none"),
                            help=f"As for `runner run` (env {setting.env}; default {default_text(name)}):"
                                 " the forecast of wall time assumes it.")(func)
    return func


def plan_forecast(spec: Manifest, ledger: LedgerBackend, counts: Mapping[str, int], flags: Mapping[str, Any]) -> Forecast:
    """The forecast of running ``spec``'s pending jobs (``counts`` by state name) with the settings said."""
    settings: RunSettings = resolve_settings(flags={name: flags.get(name) for name in FORECAST_SETTINGS},
                                             environ=os.environ, manifest=spec.settings_said())
    outstanding = counts.get(str(JobState.SUBMITTING), 0) + counts.get(str(JobState.RUNNING), 0)
    return forecast(ledger, jobs=counts.get(str(JobState.PENDING), 0), outstanding=outstanding,
                    concurrency=settings.concurrency, rpm=settings.rpm, max_runtime=settings.max_runtime)
