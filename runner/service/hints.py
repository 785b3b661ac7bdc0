"""The command a user is told to run next (``next: runner run …``), with what it needs of what they typed.

A bare ``runner run MANIFEST`` after ``runner regenerate MANIFEST --state state/demo`` would plan the batch into the
manifest's own ``state/`` — a new ledger that knows none of the jobs, and pays for every one again (the
newcomer's walk through the README, 2026-12-05) — so the hint repeats ``--state`` as given and the provider the
ledger records: ``--simulate`` for a simulator's ledger (any other is refused there), ``--base-url`` for a
provider other than the default one. In the service, beside the commands that print one: the CLI's review steps and
the run's own notices (`collect` leaving jobs pending).
"""

from __future__ import annotations

import shlex
from pathlib import Path

__all__ = ["next_command"]


def next_command(command: str, manifest: Path | str | None = None, *, state_dir: Path | None = None,
                 provider: str | None = None, budget_usd: str | None = None, note: str = "") -> str:
    """``next: runner COMMAND [MANIFEST] [--state DIR] [--simulate | --base-url URL] [--budget USD]``, quoted for a
    shell; ``provider`` is what the ledger records (``simulator``, or a base URL), ``note`` follows the command."""
    from runner.client.connection import provider_identity
    from runner.client.names import DEFAULT_BASE_URL
    from runner.service.provider import SIMULATOR

    words = ["runner", command]
    if manifest is not None:
        words.append(str(manifest))
    if state_dir is not None:
        words += ["--state", str(state_dir)]
    if provider == SIMULATOR:
        words.append("--simulate")
    elif provider and provider != provider_identity(DEFAULT_BASE_URL):
        words += ["--base-url", provider]
    if budget_usd is not None:
        words += ["--budget", budget_usd]
    return "next: " + shlex.join(words) + (f"   ({note})" if note else "")
