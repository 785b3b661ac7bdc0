"""The rescue journal as `runner ledger copy` takes it: read whole or refused, and what became of its lines told.

A copy records the task ids a stopped run journalled (:mod:`runner.ledger.rescue`) in its source before it reads the
rows (a SQLite source: its own state directory, :mod:`runner.ledger.sqlite.before_copy`; a PostgreSQL one: each
``--state`` given, :mod:`runner.ledger.postgres.before_copy`), because the source, marked moved, is never opened to
write again. So a journal that is there but cannot be read whole (written by root, the copy run as a user; an I/O
error) refuses the copy, where a run logs it and reads it at its next start. Torn lines are skipped as a run skips
them (a write cut short, written again).
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError
from runner.ledger import rescue

__all__ = ["journal_for_copy", "tell_recorded"]

log = logging.getLogger("runner.ledger")
_SHOWN = 5  # task ids named in a line that says some were not recorded


def journal_for_copy(state_dir: Path) -> list[rescue.RescueEntry]:
    """The journal's entries not yet recorded; :class:`LedgerError` (:class:`LedgerDiskError` for an I/O error) when
    it is there and cannot be read whole."""
    try:
        return rescue.read_pending(state_dir)
    except OSError as exc:
        kind = LedgerError if exc.errno in (errno.EACCES, errno.EPERM) else LedgerDiskError
        raise kind(f"cannot read the rescue journal {state_dir / rescue.RESCUE_NAME} ({exc.strerror or exc}): it may"
                   " hold task ids of paid tasks a stopped run could not record, which the copy would hold in doubt"
                   " (and `retry --in-doubt` pay for again). Make it readable by this user (or copy as the user the"
                   " runs ran as) and copy again. Nothing was copied or changed") from exc


def tell_recorded(outcomes: list[tuple[rescue.RescueEntry, str]], journal: Path, where: str) -> None:
    """Say what became of the journal's lines in the ledger at ``where``: recorded, on record already, kept on the
    job's record only, no such job (the outcomes of a replay: ``running``, ``stale``, ``kept``, ``unknown``)."""
    by: dict[str, list[rescue.RescueEntry]] = {}
    for entry, outcome in outcomes:
        by.setdefault(outcome, []).append(entry)
    if running := by.get("running"):
        log.warning("%d task id(s) recorded from %s in %s before copying it: paid tasks a stopped run could not"
                    " record; those jobs are running in the copy (nothing sent)", len(running), journal, where)
    if stale := by.get("stale"):
        log.warning("%d line(s) of %s name task ids %s records already: nothing to record", len(stale), journal, where)
    if kept := by.get("kept"):
        log.warning("%d task id(s) of %s kept on their job's record only, not as its task: the job had moved on to"
                    " another submit (paid too; its video can be fetched from the provider's console): %s",
                    len(kept), journal, _named(kept))
    if unknown := by.get("unknown"):
        log.warning("%d task id(s) of %s not recorded: %s holds no such job, so the copy does not hold them either"
                    " (paid tasks; their videos can be fetched from the provider's console): %s", len(unknown),
                    journal, where, _named(unknown))


def _named(entries: list[rescue.RescueEntry]) -> str:
    shown = ", ".join(f"{entry.key} task {entry.task_id}" for entry in entries[:_SHOWN])
    return shown + (f" and {len(entries) - _SHOWN} more (see {rescue.RESCUE_NAME})" if len(entries) > _SHOWN else "")
