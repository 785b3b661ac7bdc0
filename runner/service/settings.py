"""The settings a command runs with: flags > environment > the manifest > defaults (:mod:`runner.config`),
for a whole run (:func:`settings_for`) or for the budget alone, with where it was said (:func:`budget_for`:
what ``retry`` and ``regenerate`` keep, as the next ``run`` will)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.budget import Budget
from runner.config import SETTINGS, RunSettings, resolve_one, resolve_settings
from runner.manifest import Manifest

__all__ = ["budget_for", "settings_for"]


def settings_for(manifest: Manifest | None, flags: Mapping[str, Any], environ: Mapping[str, str]) -> RunSettings:
    """The run's settings: ``flags`` (setting name → value; None: not given) > ``environ`` > the manifest > defaults."""
    return resolve_settings(
        flags={setting.name: flags.get(setting.name) for setting in SETTINGS if setting.flag is not None},
        environ=environ,
        manifest=manifest.settings_said() if manifest is not None else {},
    )


def budget_for(manifest: Manifest, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Budget:
    """The budget ``run`` would keep for ``manifest`` (``flags["budget_usd"]``: as ``--budget`` says it, None: not
    given), where it was said, and the manifest's models of no known price (a budget cannot be kept for them)."""
    usd, source = resolve_one("budget_usd", flags={"budget_usd": flags.get("budget_usd")}, environ=environ,
                              manifest=manifest.settings_said())
    return Budget(usd, source or "--budget", manifest.unpriced_models(), manifest.display_path)
