"""``plan``'s forecast of wall time: its options (``--concurrency``, ``--rpm``, ``--max-runtime``, read
like ``run``'s: flag > environment > manifest > default); the figures are the service's
(:func:`runner.service.planning.plan`, :mod:`runner.reporting.eta`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from runner.config import BY_NAME, default_text
from runner.service.planning import FORECAST_SETTINGS

__all__ = ["forecast_options"]

F = TypeVar("F", bound=Callable[..., Any])


def forecast_options(func: F) -> F:
    """The settings the forecast reads, as ``run`` takes them (text, read by :func:`resolve_settings`)."""
    for name in reversed(FORECAST_SETTINGS):
        setting = BY_NAME[name]
        assert setting.flag is not None
        func = click.option(setting.flag, name, default=None, metavar="NUMBER" + ("" if name == "concurrency" else "|none"),
                            help=f"As for `runner run` (env {setting.env}; default {default_text(name)}):"
                                 " the forecast of wall time assumes it.")(func)
    return func
