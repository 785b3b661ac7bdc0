"""``runner ledger copy SRC DST``: move a ledger between SQLite (a state directory) and PostgreSQL (a URL)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError, LedgerLocked, LedgerNotReached, UsageError
from runner.ledger.postgres.transfer import CopyReport
from runner.ledger.postgres.transfer import copy_ledger as _copy
from runner.storage.inside import same_file

__all__ = ["CopyReport", "adopt_home", "copy_ledger", "reopen_ledger"]

# Ledger errors that keep their own exit code: another runner holds it (75), a full or read-only disk (6: a copy off
# a disk that filled up said "fix the input", exit 2), a PostgreSQL server not reached (5)
KEPT = (LedgerLocked, LedgerDiskError, LedgerNotReached)


def copy_ledger(src: str, dst: str, journals: tuple[Path, ...] = (), *,
                progress: Callable[[int], Callable[[], None]] | None = None) -> CopyReport:
    """Copy every row of the ledger at ``src`` into ``dst`` (which must hold none), refusing while a
    runner holds the source (:class:`~runner.errors.LedgerLocked`, exit 75); a disk that must be freed or made
    writable (:class:`~runner.errors.LedgerDiskError`, exit 6) and a PostgreSQL server not reached
    (:class:`~runner.errors.LedgerNotReached`, exit 5) say so; anything else that stops the copy is a usage error
    (exit 2) with nothing written to the destination. ``journals``: the state directories whose rescue journals
    are recorded in a PostgreSQL source first (``--state``), and that of the one a run from here would use
    (``RUNNER_STATE_DIR``, else ``./state``) when it ran on that ledger; a state directory source records its own.
    ``progress``: told how many rows, it returns what is called once a row (a
    :class:`~runner.reporting.ticker.Ticker`'s ``of``)."""
    from runner.ledger.postgres.urls import is_postgres_url

    if journals and not is_postgres_url(src):
        other = [str(state) for state in journals if not same_file(state, Path(src))]
        if other:
            raise UsageError(f"--state {other[0]}: --state names the state directories the hosts ran with on a"
                             f" PostgreSQL SRC; {src} is a state directory, whose own rescue journal the copy records."
                             " Copy without --state (nothing was changed)")
    _refuse_moved(src, dst)
    _refuse_cloned(src)
    nearby = Path(os.environ.get("RUNNER_STATE_DIR") or "state")  # where a run from here keeps its journal
    try:
        return _copy(src, dst, journals, nearby, progress=progress)
    except KEPT:
        raise
    except LedgerError as exc:
        raise UsageError(str(exc)) from exc


def _refuse_moved(src: str, dst: str) -> None:
    """A UsageError when the ledger at ``src`` is marked moved (`runner ledger copy` copied it, or a run went on from a
    ``cp -a`` copy of its folder) to another place than ``dst``: its jobs go on there, and a copy of it would read
    every job sent there since as pending — a run on that copy paid for each again. Copying again to where it was
    marked moved (a copy killed before it finished) starts over, as before; a source that cannot be read is left to
    the copy to say."""
    import contextlib
    import tempfile

    from runner.ledger import DB_NAME
    from runner.ledger.api import moved_to
    from runner.ledger.postgres.urls import is_postgres_url
    from runner.service.opening import moved_how, state_of, without_passwords
    from runner.service.state import open_ledger_at

    url = src if is_postgres_url(src) else None
    try:
        with contextlib.ExitStack() as stack:
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="runner-copy-"))) if url else None
            with open_ledger_at(state or Path(src), url=url, readonly=True, create=False) as ledger:
                moved = moved_to(ledger)
    except LedgerError:
        return
    if moved is None:
        return
    where, when, by_run = moved
    if is_postgres_url(where):
        if is_postgres_url(dst) and without_passwords([dst])[0] == where:
            return
    elif not is_postgres_url(dst) and os.path.realpath(Path(dst) / DB_NAME) == os.path.realpath(where):
        return
    said = without_passwords([src])[0]
    there = where if is_postgres_url(where) else state_of(where)
    raise UsageError(f"not copied: the ledger at {said} was copied to {where} ({when}, {moved_how(by_run)}) and"
                     f" its jobs go on there: a copy of {said} would read every job sent there since as pending, and a"
                     f" run on it would pay for each again. Copy that one instead (`runner ledger copy {shlex.quote(there)} DST`);"
                     f" if it is gone and you mean to go on from {said}: `runner ledger reopen {shlex.quote(said)}` first. Nothing"
                     " was copied")


def _refuse_cloned(src: str) -> None:
    """A UsageError when the PostgreSQL ledger at ``src`` is not where it was made (copied there by other tools than
    `runner ledger copy`: pg_dump, CREATE DATABASE … TEMPLATE; :mod:`runner.ledger.postgres.home`): its original may
    run on, and a copy of this one would pay again for what that one sends. A source that cannot be read is left to
    the copy to say."""
    from runner.ledger.postgres import home
    from runner.ledger.postgres.connection import PgConnection
    from runner.ledger.postgres.urls import is_postgres_url

    if not is_postgres_url(src):
        return
    try:
        conn = PgConnection.open(src, readonly=True, create=False)
        try:
            said = home.elsewhere(conn)
        finally:
            conn.close()
    except LedgerError:
        return
    if said is not None:
        raise UsageError(f"not copied: {said}")


def adopt_home(url: str) -> str | None:
    """Make where the PostgreSQL ledger at ``url`` is now its home (:mod:`runner.ledger.postgres.home`): runs there,
    refused as on a copy made by other tools than `runner ledger copy`, go on; returns where its home was (its
    server, database and schema in words), None when it was home already or had none."""
    from runner.ledger.postgres import home
    from runner.ledger.postgres.connection import PgConnection

    try:
        conn = PgConnection.open(url, create=False)
        try:
            why = home.went_on(conn, url)  # its home on this server went on after the copy: a run here pays again
            if why is not None:
                raise UsageError(f"not reopened: {why}")
            was = home.adopt(conn)
        finally:
            conn.close()
    except KEPT:
        raise
    except LedgerError as exc:
        raise UsageError(str(exc)) from exc
    return None if was is None else was.seen


def reopen_ledger(location: str) -> str | None:
    """Clear the mark `runner ledger copy` left on the ledger at ``location`` (a state directory or a PostgreSQL
    URL), so that runs use it again; returns where it was marked copied to (None: it was not marked)."""
    import contextlib
    import tempfile

    from runner.ledger.api import MOVED_META, moved_to
    from runner.ledger.postgres.urls import is_postgres_url
    from runner.service.state import open_ledger_at

    url = location if is_postgres_url(location) else None
    try:
        with contextlib.ExitStack() as stack:
            # A PostgreSQL ledger's state directory (its write marks) is no folder named by its URL in the current
            # one: this one clearing of a mark needs none, and a throwaway one keeps them.
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="runner-reopen-"))) if url else None
            with open_ledger_at(state or Path(location), url=url, create=False) as ledger:
                was = moved_to(ledger)
                if was is not None:
                    ledger.set_meta(MOVED_META, "")
    except KEPT:
        raise
    except LedgerError as exc:
        raise UsageError(str(exc)) from exc
    return was[0] if was is not None else None
