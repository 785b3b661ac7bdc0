"""State transitions of the ledger's jobs, each one transaction.

Every method checks the state it moves from (``UPDATE … WHERE key = ? AND
state IN (…)``); anything else is a bug in runner and raises
:class:`~runner.errors.LedgerError` with nothing changed::

    pending            → submitting        mark_submitting (before the POST)
    submitting         → running           mark_running (task id recorded)
    submitting         → pending | failed  mark_refused (no task was created)
    submitting         → in_doubt          mark_in_doubt, recover_submitting
    submitting         → running           apply_rescue (a task id from the rescue journal)
    in_doubt           → running           adopt_task (an operator's task id, verified)
    lost               → running           reopen_lost (the provider knows the task again)
    running, succeeded → succeeded         mark_succeeded (again: a fresh URL)
    succeeded          → succeeded         note_file_problem (the video cannot be stored locally)
    running            → failed            mark_failed (the provider said FAILED)
    succeeded          → done              mark_done
    running, succeeded → lost              mark_lost
    failed, in_doubt   → pending           reset; retry_failed_job (failed only)
    done               → done              finish_rename (the stored file got another name)

The submit path is write-ahead and durable (``synchronous=FULL``):
``mark_submitting`` commits before the POST leaves and reserves the job's
estimated price in ``spent_usd``; ``mark_refused`` gives it back (no task was
created), ``mark_running`` and ``mark_in_doubt`` keep it (a task exists or
may exist). Attempt rows record every POST and every poll / download error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from runner.errors import LedgerError
from runner.jobs import JobState
from runner.ledger import rescue
from runner.ledger.connection import Connection

__all__ = ["Transitions"]

_EVENT_KINDS = frozenset({"poll", "download"})

# What goes back to its planned value when a job returns to pending.
_CLEARED = (
    "task_id = NULL, error = NULL, reason = NULL, video_url = NULL, url_expires_at = NULL,"
    " debug_json = NULL, finished_at = NULL"
)


class Transitions:
    """The write side of :class:`~runner.ledger.store.Ledger` (a base class of it)."""

    _conn: Connection
    _clock: Callable[[], float]
    _run_id: int | None
    state_dir: Path

    def _before_submit(self) -> None:
        """Raise if the ledger must not take another submit (the Ledger checks its file)."""

    # -------------------------------------------------------------- start-up

    def apply_rescue(self) -> int:
        """Record the task ids of the rescue journal (see :mod:`runner.ledger.rescue`); returns how many.

        A line names the submit attempt the provider answered. When that attempt
        is still the job's last submit, the job takes the task: from
        ``submitting`` (the usual case: the run died before it could record it),
        or from ``in_doubt`` / ``pending`` (the journal could not be read when
        the job was put in doubt, and perhaps the operator reset it since) —
        the task exists and was paid for, so recording it is cheaper than
        paying again. A line for an older attempt is never attached to a newer
        submit (that submit's own task would be forgotten instead of held in
        doubt); if the ledger does not know its task id yet (the job was
        resubmitted meanwhile: both tasks were paid), the id is kept on the
        job's record (a submit row, outcome ``rescued``: paid, not the job's task). Every
        line is then marked consumed.
        """
        applied = 0
        for entry in rescue.pending_entries(self.state_dir):
            now = self._clock()
            with self._conn.write(durable=True) as db:
                outcome = self._replay_rescue(db, entry, now)
            rescue.crash_point("rescue-applied")
            applied += int(outcome == "running")
            try:
                rescue.mark_consumed(self.state_dir, entry, at=now, outcome=outcome)
            except OSError:
                pass  # applying again is harmless: the line's task id is on record now
        return applied

    def _replay_rescue(self, db: Database, entry: rescue.RescueEntry, now: float) -> str:
        """Apply one journal line; returns what became of it (``running``, ``stale``, ``kept``, ``unknown``)."""
        row = db.execute("SELECT state FROM jobs WHERE key = ?", (entry.key,)).fetchone()
        if row is None:
            return "unknown"
        known = db.execute(
            "SELECT 1 FROM jobs WHERE task_id = :t UNION ALL SELECT 1 FROM attempts WHERE task_id = :t LIMIT 1",
            {"t": entry.task_id},
        ).fetchone()
        if known is not None:
            return "stale"  # recorded another way (or by an earlier replay)
        last = db.execute(
            "SELECT max(id) FROM attempts WHERE key = ? AND kind = 'submit' AND outcome IS NOT 'rescued'", (entry.key,)
        ).fetchone()[0]
        detail = f"recorded from {rescue.RESCUE_NAME} (the ledger write failed when the answer arrived)"
        if last == entry.attempt and row[0] in (JobState.SUBMITTING, JobState.IN_DOUBT, JobState.PENDING):
            db.execute(
                "UPDATE jobs SET state = 'running', task_id = ?, error = NULL, reason = NULL, updated_at = ?"
                " WHERE key = ?",
                (entry.task_id, now, entry.key),
            )
            db.execute(
                "UPDATE attempts SET ended_at = ?, outcome = 'accepted', task_id = ?, detail = ? WHERE id = ?",
                (now, entry.task_id, detail, entry.attempt),
            )
            return "running"
        self._event(db, entry.key, "submit", "rescued", now, task_id=entry.task_id,
                    detail=(f"{detail}; not attached: the job had moved on to another submit. This task was"
                            " paid for too; its video can be fetched from the provider's console"))
        return "kept"

    def recover_submitting(self) -> int:
        """Jobs left in ``submitting`` by a dead process become ``in_doubt``; returns how many.

        Their POST may have created a paid task whose id was never recorded:
        they are held for the operator, never resubmitted here. Task ids of the
        rescue journal are recorded first (:meth:`apply_rescue`).
        """
        self.apply_rescue()
        now = self._clock()
        with self._conn.write(durable=True) as db:
            db.execute(
                "UPDATE attempts SET ended_at = ?, outcome = 'interrupted', detail = ?"
                " WHERE kind = 'submit' AND ended_at IS NULL"
                " AND key IN (SELECT key FROM jobs WHERE state = 'submitting')",
                (now, "the runner stopped while this request may have been on the wire"),
            )
            cursor = db.execute(
                "UPDATE jobs SET state = 'in_doubt', updated_at = ?, reason = 'INTERRUPTED',"
                " error = ? WHERE state = 'submitting'",
                (now, "interrupted while submitting: the request may have created a paid task"),
            )
            return int(cursor.rowcount)

    # ----------------------------------------------------------- transitions

    def mark_submitting(self, key: str, *, run_id: int | None = None) -> int:
        """pending → submitting, before the POST; reserves the estimate. Returns the attempt id.

        Raises :class:`~runner.errors.LedgerReplaced` (nothing written) when
        the ledger file was removed or replaced under this run.
        """
        self._before_submit()
        now = self._clock()
        with self._conn.write(durable=True) as db:
            self._move(
                db,
                key,
                now,
                (JobState.PENDING,),
                JobState.SUBMITTING,
                "attempts = attempts + 1, submitted_at = :now,"
                " spent_usd = round(spent_usd + estimated_usd, 9)",
            )
            cursor = db.execute(
                "INSERT INTO attempts (key, kind, started_at, run_id) VALUES (?, 'submit', ?, ?)",
                (key, now, run_id if run_id is not None else self._run_id),
            )
            return int(cursor.lastrowid or 0)

    def adopt_task(self, key: str, task_id: str, *, detail: str) -> None:
        """in_doubt → running: an operator attached ``task_id``, verified at the provider (``runner adopt``)."""
        now = self._clock()
        with self._conn.write(durable=True) as db:
            self._move(db, key, now, (JobState.IN_DOUBT,), JobState.RUNNING,
                       "task_id = :task_id, error = NULL, reason = NULL", task_id=task_id)
            db.execute(
                "INSERT INTO attempts (key, kind, started_at, ended_at, outcome, task_id, detail, run_id)"
                " VALUES (?, 'submit', ?, ?, 'adopted', ?, ?, ?)",
                (key, now, now, task_id, detail, self._run_id),
            )

    def reopen_lost(self, key: str, *, detail: str) -> None:
        """lost → running: the provider answered for the task again (``runner retry --lost``)."""
        now = self._clock()
        with self._conn.write(durable=True) as db:
            self._move(db, key, now, (JobState.LOST,), JobState.RUNNING,
                       "error = NULL, reason = NULL, finished_at = NULL, video_url = NULL, url_expires_at = NULL")
            self._event(db, key, "poll", "found", now, detail=detail)

    def mark_running(
        self, key: str, attempt_id: int, *, task_id: str, http_status: int | None
    ) -> None:
        """submitting → running: the provider accepted the task and gave its id."""
        now = self._clock()
        with self._conn.write(durable=True) as db:
            self._move(
                db,
                key,
                now,
                (JobState.SUBMITTING,),
                JobState.RUNNING,
                "task_id = :task_id, error = NULL, reason = NULL",
                task_id=task_id,
            )
            self._close_attempt(
                db, key, attempt_id, now, "accepted", task_id=task_id, http_status=http_status
            )

    def mark_refused(
        self,
        key: str,
        attempt_id: int,
        *,
        http_status: int | None,
        reason: str | None,
        message: str,
        permanent: bool,
    ) -> None:
        """submitting → pending (may be retried) or failed (``permanent``); no task was created."""
        now = self._clock()
        target = JobState.FAILED if permanent else JobState.PENDING
        with self._conn.write(durable=True) as db:
            self._move(
                db,
                key,
                now,
                (JobState.SUBMITTING,),
                target,
                "spent_usd = max(0, round(spent_usd - estimated_usd, 9)),"
                " error = :message, reason = :reason"
                + (", finished_at = :now" if permanent else ""),
                message=message,
                reason=reason,
            )
            self._close_attempt(
                db,
                key,
                attempt_id,
                now,
                "rejected" if permanent else "refused",
                http_status=http_status,
                detail=message,
            )

    def mark_in_doubt(
        self,
        key: str,
        attempt_id: int,
        *,
        http_status: int | None,
        reason: str | None,
        message: str,
    ) -> None:
        """submitting → in_doubt: a paid task may exist; the reservation stays."""
        now = self._clock()
        with self._conn.write(durable=True) as db:
            self._move(
                db,
                key,
                now,
                (JobState.SUBMITTING,),
                JobState.IN_DOUBT,
                "error = :message, reason = :reason",
                message=message,
                reason=reason,
            )
            self._close_attempt(
                db, key, attempt_id, now, "ambiguous", http_status=http_status, detail=message
            )

    def mark_succeeded(
        self, key: str, *, video_url: str, url_expires_at: float | None, debug: dict[str, Any]
    ) -> None:
        """running → succeeded (or succeeded → succeeded with a fresh URL)."""
        with self._conn.write() as db:
            self._move(
                db,
                key,
                self._clock(),
                (JobState.RUNNING, JobState.SUCCEEDED),
                JobState.SUCCEEDED,
                "video_url = :url, url_expires_at = :expires, debug_json = :debug,"
                " error = NULL, reason = NULL",
                url=video_url,
                expires=url_expires_at,
                debug=json.dumps(debug, sort_keys=True, default=str),
            )

    def mark_failed(self, key: str, *, reason: str) -> None:
        """running → failed: the provider reported the task FAILED."""
        now = self._clock()
        with self._conn.write() as db:
            self._move(
                db,
                key,
                now,
                (JobState.RUNNING,),
                JobState.FAILED,
                "error = :reason, reason = :reason, finished_at = :now",
                reason=reason,
            )
            self._event(db, key, "poll", "failed", now, detail=reason)

    def mark_done(self, key: str, *, path: str, sha256: str, bytes: int) -> None:
        """succeeded → done: the verified file is in place at ``path`` (relative to the state dir)."""
        with self._conn.write() as db:
            self._move(
                db,
                key,
                self._clock(),
                (JobState.SUCCEEDED,),
                JobState.DONE,
                "path = :path, sha256 = :sha256, bytes = :bytes, finished_at = :now,"
                " error = NULL, reason = NULL",
                path=path,
                sha256=sha256,
                bytes=bytes,
            )

    def mark_lost(self, key: str, *, reason: str) -> None:
        """running|succeeded → lost: paid for, but the result can no longer be fetched."""
        now = self._clock()
        with self._conn.write() as db:
            before = db.execute("SELECT state FROM jobs WHERE key = ?", (key,)).fetchone()
            self._move(
                db,
                key,
                now,
                (JobState.RUNNING, JobState.SUCCEEDED),
                JobState.LOST,
                "error = :reason, finished_at = :now",
                reason=reason,
            )
            kind = "poll" if before[0] == JobState.RUNNING else "download"
            self._event(db, key, kind, "lost", now, detail=reason)

    def note_file_problem(self, key: str, detail: str) -> None:
        """succeeded stays succeeded: its video could not be stored locally; the reason is kept on the job."""
        now = self._clock()
        with self._conn.write() as db:
            self._move(db, key, now, (JobState.SUCCEEDED,), JobState.SUCCEEDED,
                       "error = :detail, reason = 'FILE_ERROR'", detail=detail)
            self._event(db, key, "download", "file_error", now, detail=detail)

    def record_event(
        self,
        key: str,
        kind: str,
        outcome: str,
        *,
        http_status: int | None = None,
        detail: str | None = None,
        task_id: str | None = None,
    ) -> None:
        """Record a poll or download error of a job (its state does not change)."""
        if kind not in _EVENT_KINDS:
            raise LedgerError(f"unknown event kind {kind!r} (expected poll or download)")
        with self._conn.write() as db:
            if db.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone() is None:
                raise LedgerError(f"unknown job {key}; this is a bug in runner")
            self._event(
                db,
                key,
                kind,
                outcome,
                self._clock(),
                http_status=http_status,
                detail=detail,
                task_id=task_id,
            )

    def reset(self, manifest: str | None, state: JobState) -> int:
        """failed or in_doubt → pending (an explicit retry); returns how many jobs moved."""
        if state not in (JobState.FAILED, JobState.IN_DOUBT):
            raise LedgerError(f"only failed or in_doubt jobs can be reset, not {state}")
        params: dict[str, Any] = {"now": self._clock(), "state": str(state), "manifest": manifest}
        scope = (
            ""
            if manifest is None
            else (" AND id IN (SELECT job_id FROM targets WHERE manifest = :manifest)")
        )
        with self._conn.write() as db:
            cursor = db.execute(
                f"UPDATE jobs SET state = 'pending', {_CLEARED}, updated_at = :now"
                f" WHERE state = :state{scope}",
                params,
            )
            return int(cursor.rowcount)

    def retry_failed_job(self, key: str) -> None:
        """failed → pending (the manifest's job-level retry policy asked for it)."""
        with self._conn.write() as db:
            self._move(db, key, self._clock(), (JobState.FAILED,), JobState.PENDING, _CLEARED)

    # --------------------------------------------------------------- renames

    def journal_renames(self, steps: list[tuple[str, str, str]]) -> None:
        """Record (key, src, dst) renames of stored files before any is made (write-ahead)."""
        with self._conn.write(durable=True) as db:
            db.conn.executemany(
                "INSERT OR REPLACE INTO renames (key, src, dst) VALUES (?, ?, ?)", steps
            )

    def journaled_renames(self) -> list[tuple[str, str, str]]:
        """The renames recorded but not yet finished (a run stopped midway), as (key, src, dst)."""
        return [
            (str(key), str(src), str(dst))
            for key, src, dst in self._conn.tuples("SELECT key, src, dst FROM renames ORDER BY key")
        ]

    def finish_rename(self, key: str, *, src: str, dst: str) -> None:
        """done → done: the job's file was renamed from ``src`` to ``dst``; its journal entry goes."""
        with self._conn.write(durable=True) as db:
            self._move(
                db, key, self._clock(), (JobState.DONE,), JobState.DONE, "path = :dst", dst=dst, src=src,
                where="path = :src",
            )
            db.execute("DELETE FROM renames WHERE key = ?", (key,))

    def forget_rename(self, key: str) -> None:
        """Drop a journaled rename that was not made (its file stays where the job records it)."""
        with self._conn.write() as db:
            db.execute("DELETE FROM renames WHERE key = ?", (key,))

    def _move(
        self,
        db: Database,
        key: str,
        now: float,
        sources: tuple[JobState, ...],
        target: JobState,
        sets: str = "",
        where: str = "",
        **params: Any,
    ) -> None:
        """``UPDATE … WHERE key = ? AND state IN sources [AND where]``; anything else is a bug."""
        allowed = ", ".join(f"'{state}'" for state in sources)
        cursor = db.execute(
            f"UPDATE jobs SET state = :target, updated_at = :now{', ' + sets if sets else ''}"
            f" WHERE key = :key AND state IN ({allowed}){' AND ' + where if where else ''}",
            {"key": key, "now": now, "target": str(target), **params},
        )
        if cursor.rowcount == 1:
            return
        row = db.execute("SELECT state FROM jobs WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise LedgerError(f"unknown job {key}; this is a bug in runner")
        raise LedgerError(
            f"illegal transition of job {key}: {row[0]} → {target} "
            f"(allowed only from {', '.join(sources)}); this is a bug in runner"
        )

    def _close_attempt(
        self,
        db: Database,
        key: str,
        attempt_id: int,
        now: float,
        outcome: str,
        *,
        task_id: str | None = None,
        http_status: int | None = None,
        detail: str | None = None,
    ) -> None:
        cursor = db.execute(
            "UPDATE attempts SET ended_at = ?, outcome = ?, task_id = ?, http_status = ?,"
            " detail = ? WHERE id = ? AND key = ? AND kind = 'submit' AND ended_at IS NULL",
            (now, outcome, task_id, http_status, detail, attempt_id, key),
        )
        if cursor.rowcount != 1:
            raise LedgerError(
                f"attempt {attempt_id} is not an open submit of job {key}; this is a bug in runner"
            )

    def _event(
        self,
        db: Database,
        key: str,
        kind: str,
        outcome: str,
        now: float,
        *,
        http_status: int | None = None,
        detail: str | None = None,
        task_id: str | None = None,
    ) -> None:
        """One poll / download row; its task id defaults to the job's current one."""
        db.execute(
            "INSERT INTO attempts (key, kind, started_at, ended_at, outcome, task_id,"
            " http_status, detail, run_id) VALUES (?, ?, ?, ?, ?,"
            " coalesce(?, (SELECT task_id FROM jobs WHERE key = ?)), ?, ?, ?)",
            (key, kind, now, now, outcome, task_id, key, http_status, detail, self._run_id),
        )
