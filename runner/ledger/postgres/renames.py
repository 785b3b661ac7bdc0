"""The renames journal in the PostgreSQL ledger (the rules of :mod:`runner.ledger.placement`).

A rename of a stored video is journaled before the file moves and finished (or forgotten) after,
so a crash in between is completed by the next run.
"""

from __future__ import annotations

from runner.jobs import JobState
from runner.ledger.postgres.connection import PgConnection, once_more
from runner.ledger.postgres.moves import move

__all__ = ["finish_rename", "forget_rename", "journal_renames", "journaled_renames"]


@once_more
def journal_renames(conn: PgConnection, steps: list[tuple[str, str, str]]) -> None:
    with conn.write() as tx:
        tx.executemany("INSERT INTO renames (key, src, dst) VALUES (%s, %s, %s)"
                       " ON CONFLICT (key) DO UPDATE SET src = excluded.src, dst = excluded.dst", steps)


def journaled_renames(conn: PgConnection) -> list[tuple[str, str, str]]:
    rows = conn.tuples("SELECT key, src, dst FROM renames ORDER BY key")
    return [(str(key), str(src), str(dst)) for key, src, dst in rows]


@once_more
def finish_rename(conn: PgConnection, now: float, key: str, src: str, dst: str) -> bool:
    with conn.write() as tx:
        moved = move(tx, key, now, (JobState.DONE,), JobState.DONE, "path = %(dst)s",
                     where="path = %(src)s", dst=dst, src=src)
        tx.execute("DELETE FROM renames WHERE key = %s", (key,))
    return moved


@once_more
def forget_rename(conn: PgConnection, key: str) -> None:
    with conn.write() as tx:
        tx.execute("DELETE FROM renames WHERE key = %s", (key,))
