"""A run's record in the ledger: how it ended, and what one that did not end left behind."""

from __future__ import annotations

from pathlib import Path

from runner.errors import LedgerError
from runner.layout import OUTPUTS_DIR
from runner.ledger import LedgerBackend
from runner.service.opening import path_of
from runner.service.outcome import Notice, Notify
from runner.storage.local import LocalStore
from runner.storage.room import by_size

__all__ = ["finish_run", "remove_partials_after_crash"]


def remove_partials_after_crash(ledger: LedgerBackend, state_dir: Path, say: Notify) -> None:
    """The last run did not end (``kill -9``, the OOM killer, a power cut): the downloads it had on the wire left
    their temporary files, up to a whole video each, which nothing else removes. Only on SQLite, whose lock (held
    now) keeps every other writer out of the state directory; a walk of ``outputs/``, only after such a run."""
    if path_of(ledger) is None:
        return
    last = ledger.runs(limit=1)
    if not last or last[0].ended_at is not None:
        return
    try:
        files, size = LocalStore(state_dir).remove_partials(OUTPUTS_DIR)
    except OSError as exc:
        say(Notice(f"could not remove what the last run's downloads left under {state_dir / OUTPUTS_DIR}: {exc}",
                   "warning"))
        return
    if files:
        say(Notice(f"removed {files} partial download(s) the last run left when it was killed ({by_size(size)})",
                   "notice"))


def finish_run(ledger: LedgerBackend, run_id: int, exit_code: int, scope: str | None, say: Notify, *,
               failing: bool) -> None:
    """Record how the run ended. When the run is already failing (say the disk is full), a ledger
    that cannot take this last write either must not hide the first error."""
    try:
        counts = {str(k): v for k, v in ledger.counts(scope).items()}
        ledger.finish_run(run_id, exit_code=exit_code, counts=counts)
    except LedgerError as exc:
        if not failing:
            raise
        say(Notice(f"could not record the end of this run in the ledger either: {exc}", "notice"))
