"""The command a user is told to run next (``next: runner run …``), with what it needs of what they typed.

A bare ``runner run MANIFEST`` after ``runner regenerate MANIFEST --state state/demo`` would plan the batch into the
manifest's own ``state/`` — a new ledger that knows none of the jobs, and pays for every one again (the
newcomer's walk through the README, 2026-12-05) — so the hint repeats ``--state`` as given and the provider the
ledger records: ``--simulate`` for a simulator's ledger (any other is refused there), ``--base-url`` for a
provider other than the default one. In the service, beside the commands that print one: the CLI's review steps and
the run's own notices (`collect` leaving jobs pending).
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

__all__ = ["budget_stop", "ledger_words", "next_command"]


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


def ledger_words(state_dir: Path | None, url: str | None) -> tuple[str, ...]:
    """The flags that open a command's ledger again, for one it tells the operator to paste (the engine's `runner adopt`
    hints): the --state given, a PostgreSQL ledger's URL without its password (PGPASSWORD or ~/.pgpass gives it)."""
    from runner.service.opening import without_passwords

    state = () if state_dir is None else ("--state", str(state_dir))
    return (*state, *(("--ledger", without_passwords([url])[0]) if url else ()))


def budget_stop(manifest: str, said: str, *, left: int, left_usd: float, spent_usd: float, manifest_path: Path | None,
                state_dir: Path | None, provider: str | None) -> str:
    """A run stopped by its budget (``said``: ``--budget 8``, ``manifest limits.budget_usd: 8``…) with ``left`` jobs
    pending: what they cost, and the command whose budget (in cents, rounded up) pays for the whole manifest."""
    whole = math.ceil(round((spent_usd + left_usd) * 100, 6)) / 100
    run = next_command("run", manifest_path or "MANIFEST", state_dir=state_dir, provider=provider,
                       budget_usd=f"{whole:.2f}").removeprefix("next: ")
    return (f"{manifest} stopped at its budget ({said}) with {left} job(s) left, about {left_usd:.2f} USD (estimate)"
            f" on top of {spent_usd:.2f} USD spent; to finish it: `{run}` (or raise the budget where it is said)")
