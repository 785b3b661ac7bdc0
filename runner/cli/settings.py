"""The flags of the run settings (``--concurrency``, ``--budget``, …), made from :mod:`runner.config`'s table.

Every value is taken as text and read by :func:`runner.config.resolve_settings` (or ``resolve_one``), so a
flag accepts exactly what its environment variable and the manifest's key accept ('none' lifts a liftable
limit) — in ``run`` and in every command that takes one of them (``retry --budget``, ``regenerate --budget``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from runner.config import BY_NAME, DEFAULTS, IN_DOUBT_POLICIES, SETTINGS, default_text, liftable

__all__ = ["setting_option", "setting_options"]

F = TypeVar("F", bound=Callable[..., Any])


def setting_option(name: str, help_text: str | None = None) -> Callable[[F], F]:
    """The option of setting ``name``: its flag, destination ``name``, no default (None: not given), and its help
    (``help_text`` instead of the table's, for a command where the setting does something narrower)."""
    setting = BY_NAME[name]
    assert setting.flag is not None, name
    default = getattr(DEFAULTS, name)
    kind: Any = str
    metavar: str | None = ("INTEGER" if isinstance(default, int) else "NUMBER") + ("|none" if liftable(name) else "")
    if name == "in_doubt":
        kind, metavar = click.Choice(IN_DOUBT_POLICIES, case_sensitive=False), None
    text = (help_text or setting.help).rstrip(".")
    return click.option(setting.flag, name, type=kind, default=None, metavar=metavar,
                        help=f"{text} (env {setting.env}; default {default_text(name)}).")


def setting_options() -> list[Callable[[F], F]]:
    """One option per run setting that has a flag, in the table's order."""
    return [setting_option(setting.name) for setting in SETTINGS if setting.flag is not None]
