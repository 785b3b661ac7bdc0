"""What the operator picks by hand in the SQLite ledger: retry chosen jobs, count review decisions.

A mixin of :class:`~runner.ledger.sqlite.SqliteLedger` (whose class is at the module size limit).
"""

from __future__ import annotations

from collections.abc import Sequence

from runner.errors import LedgerError
from runner.jobs import JobState
from runner.ledger.api import Clock
from runner.ledger.connection import Connection
from runner.ledger.sqlite.moves import CLEARED, move

__all__ = ["Picks"]


class Picks:
    """``reset_keys`` and ``review_counts`` (see :class:`~runner.ledger.api.LedgerBackend`)."""

    _conn: Connection
    _clock: Clock

    def reset_keys(self, keys: Sequence[str], state: JobState) -> list[str]:
        """Those of ``keys`` still ``state`` (failed or in_doubt) → pending, in one transaction."""
        if state not in (JobState.FAILED, JobState.IN_DOUBT):
            raise LedgerError(f"only failed or in_doubt jobs can be reset, not {state}")
        now = self._clock()
        with self._conn.write() as db:
            return [key for key in dict.fromkeys(keys) if move(db, key, now, (state,), JobState.PENDING, CLEARED)]

    def review_counts(self, manifest: str | None = None) -> dict[str, int]:
        """Done jobs of ``manifest`` (or all) by review decision: ``{"rejected": n, "accepted": m}``."""
        scope = "" if manifest is None else " AND id IN (SELECT job_id FROM targets WHERE manifest = ?)"
        rows = self._conn.rows(
            f"SELECT review, count(*) AS n FROM jobs WHERE state = 'done' AND review IS NOT NULL{scope}"
            " GROUP BY review", () if manifest is None else (manifest,))
        found = {"rejected": 0, "accepted": 0}
        for row in rows:
            if row["review"] in found:
                found[str(row["review"])] = int(row["n"])
        return found
