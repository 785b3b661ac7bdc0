"""Owners of the PostgreSQL ledger's work: leases, claims of pending jobs, recovery of expired work.

Every function takes the connection and the parameters of :func:`~runner.ledger.postgres.moves.live`
(``me``: this ledger's own owner, ``caller``, ``now``). The rules are those of :mod:`runner.ledger.api`;
across hosts they rest on PostgreSQL's row locks:

* a claim is one ``UPDATE … FROM (SELECT … ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED)`` (the queue
  pattern of procrastinate and other PostgreSQL job queues): two runners claiming at once lock
  disjoint rows, and a row another claim has just taken is re-checked against its new owner;
* recovery first moves the expired owners' ``submitting`` rows (locking them: an owner recording its
  POST's answer at that moment either commits first — its job is then running, not in doubt — or
  finds the row in doubt and is refused), then closes exactly those rows' open submits.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.errors import LedgerError
from runner.jobs import JobState
from runner.ledger import rescue
from runner.ledger.postgres.connection import PgConnection, Row, Tx, once_more
from runner.ledger.postgres.marks import PRUNE_AFTER_S
from runner.ledger.postgres.moves import LIVE, bulk, event, live, task_holder
from runner.ledger.records import JOB_COLUMNS, LeaseRecord

__all__ = ["claim", "give_back", "leases", "prune", "recover", "release", "renew", "replay", "replay_entries",
           "replay_rescue", "rescue_task_id"]

_INTERRUPTED = "the runner stopped while this request may have been on the wire"
_IN_DOUBT = "interrupted while submitting: the request may have created a paid task"


@once_more
def renew(conn: PgConnection, live_params: dict[str, Any], owner: str, ttl: float, *, held: bool = False) -> bool:
    """Take or extend ``owner``'s lease until now + ``ttl``; False (nothing written) if it had expired.

    Also this ledger's own owner: on a shared ledger an expired lease means another runner may have
    taken its work over, whoever asks. ``held``: ``owner`` had a lease, so a row gone is one expired and
    pruned (:func:`prune`: a runner stopped for a week), never a first lease."""
    now = live_params["now"]
    with conn.write() as tx:
        row = tx.execute("SELECT expires_at FROM leases WHERE owner = %s FOR UPDATE", (owner,)).fetchone()
        if (row is None and held) or (row is not None and row["expires_at"] <= now):
            return False
        tx.execute(
            "INSERT INTO leases (owner, host, pid, started_at, renewed_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (owner) DO UPDATE SET"
            " renewed_at = excluded.renewed_at, expires_at = excluded.expires_at",
            (owner, socket.gethostname(), os.getpid(), now, now, now + ttl),
        )
    return True


def prune(conn: PgConnection, now: float) -> None:
    """Delete the leases expired :data:`~runner.ledger.postgres.marks.PRUNE_AFTER_S` ago: killed runners' (one that
    closes deletes its own), each listed by ``runner status`` for ever. A missing lease reads as an expired one."""
    with conn.write() as tx:
        tx.execute("DELETE FROM leases WHERE expires_at < %s", (now - PRUNE_AFTER_S,))


@once_more
def claim(conn: PgConnection, live_params: dict[str, Any], n: int, manifest: str | None) -> list[Row]:
    """Claim up to ``n`` pending jobs no live owner holds for ``caller`` (its own claims excluded: they
    were handed out already), in planning order, atomically; their rows in that order."""
    if n <= 0:
        return []
    params = live_params | {"manifest": manifest, "n": n}
    scope = "" if manifest is None else " AND c.id IN (SELECT job_id FROM targets WHERE manifest = %(manifest)s)"
    with conn.write() as tx:
        rows: list[Row] = tx.execute(
            "WITH picked AS (SELECT c.id FROM jobs c WHERE c.state = 'pending'"
            f" AND (c.owner IS NULL OR (c.owner <> %(caller)s AND NOT {live('c.owner')})){scope}"
            " ORDER BY c.id LIMIT %(n)s FOR UPDATE OF c SKIP LOCKED)"
            " UPDATE jobs AS j SET owner = %(caller)s FROM picked"
            f" WHERE j.id = picked.id RETURNING {JOB_COLUMNS}, NULL AS output",
            params,
        ).fetchall()
    return sorted(rows, key=lambda row: int(row["id"]))


def leases(conn: PgConnection, now: float) -> list[LeaseRecord]:
    """Every runner's lease at ``now``, the oldest first."""
    return [LeaseRecord(**row, live=row["expires_at"] > now, heartbeat_age=now - row["renewed_at"]) for row in conn.rows(
        "SELECT owner, host, pid, started_at, renewed_at, expires_at FROM leases ORDER BY started_at, owner")]


def give_back(conn: PgConnection, owner: str) -> None:
    """Give back ``owner``'s claims and drop its lease (a closing ledger: another runner may take its work over at
    once); a failure is passed over, the lease then expiring."""
    with contextlib.suppress(LedgerError), conn.write() as tx:
        bulk(tx)
        tx.execute("UPDATE jobs SET owner = NULL WHERE owner = %s AND state = 'pending'", (owner,))
        tx.execute("DELETE FROM leases WHERE owner = %s", (owner,))


@once_more
def release(conn: PgConnection, owner: str) -> int:
    """Give back ``owner``'s claims on jobs still pending; how many."""
    with conn.write() as tx:
        bulk(tx)
        return int(tx.execute("UPDATE jobs SET owner = NULL WHERE owner = %s AND state = 'pending'", (owner,)).rowcount)


@once_more
def recover(conn: PgConnection, live_params: dict[str, Any]) -> int:
    """Expired owners' ``submitting`` rows → ``in_doubt`` (their open submit closed as interrupted), their
    running / succeeded rows → ``caller``'s, their claims lapse; one transaction. How many in doubt."""
    params = live_params | {"detail": _INTERRUPTED, "error": _IN_DOUBT}
    expired = f"(owner IS NULL OR NOT {LIVE})"
    with conn.write() as tx:
        bulk(tx)
        doubted = [str(row["key"]) for row in tx.execute(
            "UPDATE jobs SET state = 'in_doubt', updated_at = %(now)s, reason = 'INTERRUPTED',"
            f" error = %(error)s, owner = NULL WHERE state = 'submitting' AND {expired} RETURNING key",
            params,
        ).fetchall()]
        if doubted:
            tx.execute(
                "UPDATE attempts SET ended_at = %(now)s, outcome = 'interrupted', detail = %(detail)s"
                " WHERE kind = 'submit' AND ended_at IS NULL AND key = ANY(%(keys)s)",
                params | {"keys": doubted},
            )
        tx.execute(f"UPDATE jobs SET owner = %(caller)s WHERE state IN ('running', 'succeeded') AND {expired}",
                   params)
        tx.execute(f"UPDATE jobs SET owner = NULL WHERE state = 'pending' AND owner IS NOT NULL AND NOT {LIVE}",
                   params)
    return len(doubted)


@once_more
def replay(conn: PgConnection, entry: rescue.RescueEntry, now: float, run_id: int | None) -> str:
    """:func:`replay_rescue` in a transaction of its own."""
    with conn.write() as tx:
        return replay_rescue(tx, entry, now, run_id)


def rescue_task_id(state_dir: Path, now: float, key: str, attempt_id: int, task_id: str) -> bool:
    """Journal an accepted task id the ledger could not record; never raises, False if that failed too."""
    entry = rescue.RescueEntry(key=key, task_id=task_id, attempt=attempt_id, at=now)
    written = rescue.append_entry(state_dir, entry)
    rescue.crash_point("rescue-journalled")
    return written


def replay_entries(conn: PgConnection, state_dir: Path, entries: list[rescue.RescueEntry], clock: Callable[[], float],
                   run_id: int | None) -> list[tuple[rescue.RescueEntry, str]]:
    """Apply ``entries`` (the journal of ``state_dir``, read by the caller), each in a transaction of its own, and mark
    each line consumed; each with what became of it (:func:`replay_rescue`). A run's start and `ledger copy` alike."""
    outcomes = []
    for entry in entries:
        now = clock()
        outcome = replay(conn, entry, now, run_id)
        rescue.crash_point("rescue-applied")
        outcomes.append((entry, outcome))
        with contextlib.suppress(OSError):  # applying again is harmless: the task id is on record now
            rescue.mark_consumed(state_dir, entry, at=now, outcome=outcome)
    return outcomes


def replay_rescue(tx: Tx, entry: rescue.RescueEntry, now: float, run_id: int | None) -> str:
    """Apply one rescue journal line (see ``SqliteLedger.apply_rescue``); what became of it:
    ``running``, ``stale``, ``kept`` or ``unknown``."""
    # The id's lock first (as mark_running takes it, before the job's row): a runner on another host recording the
    # same id at this moment is waited for, and its row seen (a plain read would miss it under READ COMMITTED).
    holder = task_holder(tx, entry.task_id)
    row = tx.execute("SELECT state FROM jobs WHERE key = %s FOR UPDATE", (entry.key,)).fetchone()
    if row is None:
        return "unknown"
    if holder is not None:
        return "stale"  # recorded another way (or by an earlier replay), or another job holds it: never attached here
    last = tx.scalar(
        "SELECT max(id) FROM attempts WHERE key = %s AND kind = 'submit' AND outcome IS DISTINCT FROM 'rescued'",
        (entry.key,),
    )
    detail = f"recorded from {rescue.RESCUE_NAME} (the ledger write failed when the answer arrived)"
    if last == entry.attempt and row["state"] in (JobState.SUBMITTING, JobState.IN_DOUBT, JobState.PENDING):
        tx.execute(
            "UPDATE jobs SET state = 'running', task_id = %s, error = NULL, reason = NULL, updated_at = %s"
            " WHERE key = %s",
            (entry.task_id, now, entry.key),
        )
        tx.execute(
            "UPDATE attempts SET ended_at = %s, outcome = 'accepted', task_id = %s, detail = %s WHERE id = %s",
            (now, entry.task_id, detail, entry.attempt),
        )
        return "running"
    event(tx, run_id, entry.key, "submit", "rescued", now, task_id=entry.task_id,
          detail=(f"{detail}; not attached: the job had moved on to another submit. This task was"
                  " paid for too; its video can be fetched from the provider's console"))
    return "kept"
