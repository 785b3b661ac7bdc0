"""Owners of the SQLite ledger's work: leases, claims of pending jobs, recovery of expired work.

Every function takes the connection and the parameters of
:data:`~runner.ledger.sqlite.moves.LIVE` (``me``: the process holding the lock, ``caller``, ``now``,
``opened``: when the ledger was opened — a lease renewed before that belongs to an earlier process,
dead by the lock). The rules are those of :mod:`runner.ledger.api`.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from runner.ledger.connection import Connection, Row
from runner.ledger.records import JOB_COLUMNS
from runner.ledger.sqlite.moves import KEEP_STAMP, LIVE, live

__all__ = ["claim", "recover", "release", "renew"]

_INTERRUPTED = "the runner stopped while this request may have been on the wire"
_IN_DOUBT = "interrupted while submitting: the request may have created a paid task"


def renew(conn: Connection, live_params: dict[str, Any], owner: str, ttl: float) -> bool:
    """Take or extend ``owner``'s lease until now + ``ttl``; False (nothing written) if it had expired."""
    now, opened = live_params["now"], live_params["opened"]
    with conn.write() as db:
        row = db.execute("SELECT renewed_at, expires_at FROM leases WHERE owner = ?", (owner,)).fetchone()
        if row is not None and owner != live_params["me"] and (row[1] <= now or row[0] < opened):
            return False
        db.execute(
            "INSERT INTO leases (owner, host, pid, started_at, renewed_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET"
            " renewed_at = excluded.renewed_at, expires_at = excluded.expires_at",
            (owner, socket.gethostname(), os.getpid(), now, now, now + ttl),
        )
    return True


def claim(conn: Connection, live_params: dict[str, Any], n: int, manifest: str | None) -> list[Row]:
    """Claim up to ``n`` pending jobs no live owner holds for ``caller`` (its own claims excluded: they
    were handed out already), in planning order, in one transaction; their rows."""
    if n <= 0:
        return []
    params = live_params | {"manifest": manifest, "n": n}
    scope = "" if manifest is None else " AND j.id IN (SELECT job_id FROM targets WHERE manifest = :manifest)"
    with conn.write() as db:
        ids = [int(row[0]) for row in db.execute(
            "SELECT j.id FROM jobs j WHERE j.state = 'pending' AND (j.owner IS NULL OR"
            f" (j.owner <> :caller AND NOT {live('j.owner')})){scope} ORDER BY j.id LIMIT :n",
            params,
        ).fetchall()]
        if not ids:
            return []
        marks = ", ".join(str(i) for i in ids)
        db.execute(f"UPDATE jobs SET owner = :caller WHERE id IN ({marks})", params)
        return list(db.query(f"SELECT {JOB_COLUMNS}, NULL AS output FROM jobs j WHERE j.id IN ({marks}) ORDER BY j.id"))


def release(conn: Connection, owner: str) -> int:
    """Give back ``owner``'s claims on jobs still pending; how many."""
    with conn.write() as db:
        return int(db.execute("UPDATE jobs SET owner = NULL WHERE owner = ? AND state = 'pending'", (owner,)).rowcount)


def recover(conn: Connection, live_params: dict[str, Any]) -> int:
    """Expired owners' ``submitting`` rows → ``in_doubt`` (their open submit closed as interrupted, its boot stamp kept), their
    running / succeeded rows → ``caller``'s, their claims lapse; one durable transaction. How many in doubt."""
    params = live_params | {"detail": _INTERRUPTED, "error": _IN_DOUBT}
    expired = f"(owner IS NULL OR NOT {LIVE})"
    with conn.write(durable=True) as db:
        db.execute(
            f"UPDATE attempts SET ended_at = :now, outcome = 'interrupted', detail = {KEEP_STAMP}"
            " WHERE kind = 'submit' AND ended_at IS NULL"
            f" AND key IN (SELECT key FROM jobs WHERE state = 'submitting' AND {expired})",
            params,
        )
        doubted = int(db.execute(
            "UPDATE jobs SET state = 'in_doubt', updated_at = :now, reason = 'INTERRUPTED',"
            f" error = :error, owner = NULL WHERE state = 'submitting' AND {expired}",
            params,
        ).rowcount)
        db.execute(f"UPDATE jobs SET owner = :caller WHERE state IN ('running', 'succeeded') AND {expired}", params)
        db.execute(f"UPDATE jobs SET owner = NULL WHERE state = 'pending' AND owner IS NOT NULL AND NOT {LIVE}", params)
    return doubted
