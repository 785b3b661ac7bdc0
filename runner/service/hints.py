"""The command a user is told to run next (``next: runner run …``), with what it needs of what they typed.

A bare ``runner run MANIFEST`` after ``runner regenerate MANIFEST --state state/demo`` would plan the batch into the
manifest's own ``state/`` — a new ledger that knows none of the jobs, and pays for every one again (the
newcomer's walk through the README, 2026-12-05) — so the hint repeats ``--state`` as given and the provider the
ledger records: ``--simulate`` for a simulator's ledger (any other is refused there), ``--base-url`` for a
provider other than the default one; and a PostgreSQL ledger's ``--ledger`` (:func:`ledger_words`: its URL without
the password, or ``"$RUNNER_LEDGER_URL"``), without which the pasted command opened the SQLite ledger of ``--state``. In the service, beside the commands that print one: the CLI's review steps and
the run's own notices (`collect` leaving jobs pending).
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping
from pathlib import Path

__all__ = ["budget_stop", "ledger_words", "next_command", "provider_flags", "runner_command"]


def next_command(command: str, manifest: Path | str | None = None, *, state_dir: Path | None = None,
                 provider: str | None = None, budget_usd: str | None = None, note: str = "",
                 ledger: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``next: runner COMMAND [MANIFEST] [--state DIR] [--ledger URL] [--simulate | --base-url URL] [--budget USD]``
    (see :func:`runner_command`); ``note`` follows the command, with what the operator must know to paste it."""
    line, told = runner_command(command, manifest, state_dir=state_dir, provider=provider, budget_usd=budget_usd,
                                ledger=ledger, environ=environ)
    notes = "; ".join(part for part in (note, told) if part)
    return "next: " + line + (f"   ({notes})" if notes else "")


def runner_command(command: str, manifest: Path | str | None = None, *, state_dir: Path | None = None,
                   provider: str | None = None, budget_usd: str | None = None, ledger: str | None = None,
                   environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``runner COMMAND [MANIFEST] [--state DIR] [--ledger URL] [--simulate | --base-url URL] [--budget USD]``,
    quoted for a shell, and what the operator must know to paste it (else ""); ``provider`` is what the ledger
    records (``simulator``, or a base URL). The ledger is this command's (``ledger``, else --ledger, else
    ``RUNNER_LEDGER_URL``), said as :func:`ledger_words` says it: a PostgreSQL operator's pasted hint opened the
    SQLite ledger under ./state instead (a ledger that knows none of the jobs, and pays for every one again)."""
    from runner.service.state import ledger_url

    where, told = ledger_words(state_dir, ledger_url(ledger), environ)
    words = ["runner", command] + ([] if manifest is None else [str(manifest)])
    rest = provider_flags(provider)
    if budget_usd is not None:
        rest += ["--budget", budget_usd]
    return " ".join([shlex.join(words), *where, *map(shlex.quote, rest)]), told


def provider_flags(provider: str | None) -> list[str]:
    """The flags that reach ``provider`` (what a ledger records: ``simulator``, or a base URL) again: ``--simulate``,
    ``--base-url URL``, or none for the default provider (or none known)."""
    from runner.client.connection import provider_identity
    from runner.client.names import DEFAULT_BASE_URL
    from runner.service.provider import SIMULATOR

    if provider == SIMULATOR:
        return ["--simulate"]
    if provider and provider != provider_identity(DEFAULT_BASE_URL):
        return ["--base-url", provider]
    return []


def ledger_words(state_dir: Path | None, url: str | None,
                 environ: Mapping[str, str] | None = None) -> tuple[tuple[str, ...], str]:
    """The flags that open a command's ledger again, for one it tells the operator to paste (the engine's `runner adopt`
    hints), each quoted for a shell, and what the operator must know to paste them (else ""): the --state given; a
    PostgreSQL ledger's URL, which is printed without its password. A URL with a password that is the one
    ``RUNNER_LEDGER_URL`` holds is named by the variable (``--ledger "$RUNNER_LEDGER_URL"``): printed without it, the
    pasted command would log in without the password the variable gives, and fail; any other's hint says where the
    password must come from (PGPASSWORD or ~/.pgpass)."""
    from runner.ledger.factory import LEDGER_URL_ENV
    from runner.service.opening import without_passwords

    state = () if state_dir is None else ("--state", shlex.quote(str(state_dir)))
    if not url:
        return state, ""
    shown = without_passwords([url])[0]
    if shown == url:
        return (*state, "--ledger", shlex.quote(url)), ""
    if url == (os.environ if environ is None else environ).get(LEDGER_URL_ENV):
        return (*state, "--ledger", f'"${LEDGER_URL_ENV}"'), ""
    return ((*state, "--ledger", shlex.quote(shown)),
            "the ledger URL's password is left out of these commands: give it with PGPASSWORD or ~/.pgpass")


def budget_stop(manifest: str, said: str, *, left: int, left_usd: float, spent_usd: float, manifest_path: Path | None,
                state_dir: Path | None, provider: str | None, ledger: str | None = None,
                environ: Mapping[str, str] | None = None) -> str:
    """A run stopped by its budget (``said``: ``--budget 8``, ``manifest limits.budget_usd: 8``…) with ``left`` jobs
    pending: what they cost, and the command whose budget (in cents, rounded up) pays for the whole manifest."""
    whole = math.ceil(round((spent_usd + left_usd) * 100, 6)) / 100
    run, told = runner_command("run", manifest_path or "MANIFEST", state_dir=state_dir, provider=provider,
                               budget_usd=f"{whole:.2f}", ledger=ledger, environ=environ)
    return (f"{manifest} stopped at its budget ({said}) with {left} job(s) left, about {left_usd:.2f} USD (estimate)"
            f" on top of {spent_usd:.2f} USD spent; to finish it: `{run}` (or raise the budget where it is said"
            + (f"; {told})" if told else ")"))
