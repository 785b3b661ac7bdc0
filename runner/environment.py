"""The environment variables runner reads, and a word for one it does not (a typo reads as unset).

``RUNNER_BUDGET=5`` in a cron line sets no budget — runner reads ``RUNNER_BUDGET_USD`` — and nothing said so.
:func:`unknown` names each ``RUNNER_*`` or ``NOVITA_*`` variable set in the environment that runner does not
read, with the one it probably meant; the CLI warns about each once, before the command runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from runner.config import SETTINGS

__all__ = ["KNOWN", "unknown"]

#: Every variable runner (or its test and CI set-up) reads; tests/unit/test_environment.py keeps it whole.
KNOWN: frozenset[str] = frozenset({setting.env for setting in SETTINGS if setting.env} | {  # the run settings
    # where things are, and the provider
    "RUNNER_STATE_DIR", "RUNNER_LEDGER_URL", "NOVITA_API_KEY", "NOVITA_BASE_URL",
    "RUNNER_SCRATCH_STATE",  # a state directory a reboot empties, kept there on purpose (no warning)
    # timing knobs
    "RUNNER_LEASE_TTL", "RUNNER_IN_DOUBT_HOLD", "RUNNER_PROGRESS_SECONDS", "RUNNER_REVIEW_SAVE_EVERY",
    # tests, CI and benchmarks
    "RUNNER_PG_BINDIR", "RUNNER_REQUIRE_POSTGRES", "RUNNER_REQUIRE_CHROMIUM", "RUNNER_TEST_CRASH_AT",
    "RUNNER_TEST_CRASH_SIGNAL",
    "RUNNER_TORTURE_SEED", "RUNNER_TEST_CLOCK_FILE",
})

_PREFIXES = ("RUNNER_", "NOVITA_")


def unknown(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each variable of ``environ`` with runner's prefixes that runner does not read, and the known one closest
    to it (None: none is close), in name order."""
    found = []
    for name in sorted(environ):
        if name.startswith(_PREFIXES) and name not in KNOWN:
            close = difflib.get_close_matches(name, KNOWN, n=1, cutoff=0.75)
            found.append((name, close[0] if close else None))
    return found
