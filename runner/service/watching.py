"""``runner status --watch`` / ``runner top``: a run's progress from another terminal, from the ledger only.

Each refresh opens the ledger read-only (SQLite: no lock taken, nothing created or written; a
live run holds the lock and goes on), reads the manifest's status and hands a
:class:`~runner.reporting.watch.WatchFrame` to ``show``; the provider is never asked anything.
Reopening at each refresh sees a ledger the run migrated or replaced meanwhile. A PostgreSQL ledger's server that
goes away mid-watch (a restart, a failover, the network) ended the watch, exit 5; the last frame is shown again
instead, marked ``stale`` with since when and why, until the server answers again (one that cannot be reached as
the watch starts is still exit 5: there is nothing to show).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from runner.errors import LedgerBusy, LedgerNotReached, LedgerUnreachable, UsageError
from runner.manifest import load_manifest
from runner.reporting.watch import Rates, WatchFrame
from runner.service.reading import require_ledger, summary_of
from runner.service.state import open_ledger_at, resolve_state

__all__ = ["DEFAULT_EVERY_S", "watch"]

DEFAULT_EVERY_S = 2.0


def watch(manifest_path: Path, state_dir: Path | None = None, *, every: float = DEFAULT_EVERY_S,
          show: Callable[[WatchFrame], None], refreshes: int | None = None,
          clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> int:
    """Call ``show`` with a fresh frame every ``every`` seconds until interrupted (or ``refreshes`` times);
    returns how many frames were shown."""
    if not every > 0:
        raise UsageError(f"--watch {every:g}: the refresh interval must be more than 0 seconds")
    spec = load_manifest(manifest_path)
    where = resolve_state(state_dir, manifest_path)
    require_ledger(where, spec, manifest_path)
    rates = Rates()
    shown, last, since = 0, None, None
    while refreshes is None or shown < refreshes:
        try:
            with open_ledger_at(where, readonly=True) as ledger:
                summary = summary_of(ledger, spec.name, now=clock())
        except LedgerBusy:  # a first registration under way: nothing to read yet, the next refresh will
            sleep(every)
            continue
        except (LedgerNotReached, LedgerUnreachable) as exc:  # its server gone mid-watch: the last frame, stale
            if last is None:
                raise
            since = clock() if since is None else since
            show(dataclasses.replace(last, stale=f"the ledger could not be read since {_clock_time(since)}: {exc}"))
        else:
            last, since = rates.frame(summary), None
            show(last)
        shown += 1
        if refreshes is None or shown < refreshes:
            sleep(every)
    return shown


def _clock_time(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))
