"""Opening the ledger a run writes: PostgreSQL at a URL, else SQLite in the state directory."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from runner.errors import LedgerDiskError, LedgerError, LedgerLocked, LedgerNotReached, UsageError
from runner.ledger import DB_NAME, LedgerBackend
from runner.ledger.api import copying_from, moved_to
from runner.service.outcome import Notice, Notify
from runner.service.state import open_ledger_at

__all__ = ["header", "moved_how", "open_for_run", "path_of", "refuse_moved", "say_created", "state_of",
           "without_passwords"]


def open_for_run(state_dir: Path, *, new_ledger: bool = False, create: bool = True,
                 url: str | None = None) -> LedgerBackend:
    """Open the ledger for writing; a state directory or ledger file we cannot use is a usage error.

    Nothing has been sent yet, so the operator fixes ``--state`` (or moves the
    file aside) and runs again. Another runner holding the lock stays
    :class:`~runner.errors.LedgerLocked` (exit 75), and a PostgreSQL server not reached
    :class:`~runner.errors.LedgerNotReached` (exit 5, as every command says it).
    """
    try:
        ledger = open_ledger_at(state_dir, url=url, new_ledger=new_ledger, create=create)
    except (LedgerLocked, LedgerNotReached):
        raise
    except LedgerDiskError as exc:  # a full or read-only disk: exit 6, someone must act (exit 2 says: fix the input)
        said = str(exc)
        raise LedgerDiskError(said if "nothing was sent" in said else f"{said} (nothing was sent)") from exc
    except LedgerError as exc:
        said = str(exc)
        already = any(words in said.lower() for words in ("nothing was changed", "nothing was sent"))
        raise UsageError(said if already else f"{said} (nothing was sent)") from exc
    source = copying_from(ledger)
    if source is not None:  # a copy killed before its rows committed: an empty ledger that knows nothing paid
        file = path_of(ledger)
        here = shlex.quote(ledger.location if file is None else str(file.parent.absolute()))  # as `ledger copy`
        # takes it, quoted for a shell (a folder with a space: two words, pasted)
        ledger.close()
        raise UsageError(f"the ledger {ledger.location} is an unfinished copy of {source} (`runner ledger copy` was"
                         " stopped before it finished): it holds none of that ledger's jobs, and running on it would pay"
                         f" for every one again. Copy again — `runner ledger copy {shlex.quote(source)} {here}` starts over —"
                         " or run on the source (nothing was sent)")
    refuse_moved(ledger, "nothing was sent")
    return ledger


def refuse_moved(ledger: LedgerBackend, done: str) -> None:
    """Close ``ledger`` and raise a UsageError when it is marked moved (`runner ledger copy` copied it, or a run went on
    from a ``cp -a`` copy of its folder): its jobs go on there, and what is sent or decided here no run there sees
    (``done``: what the command left undone)."""
    moved = moved_to(ledger)
    if moved is None:
        return
    where, when, by_run = moved
    ledger.close()
    # What to type: --ledger URL for a database, --state DIR for a SQLite copy (it records its file), and reopen
    # takes what a run takes (the walk through the README: `ledger reopen state/demo/ledger.db` was refused).
    from runner.ledger.postgres.urls import is_postgres_url  # here only: a SQLite run never loads the backend

    there = shlex.join(["--ledger", where] if is_postgres_url(where) else ["--state", state_of(where)])
    here = shlex.quote(ledger.location if is_postgres_url(ledger.location) else str(ledger.state_dir))
    raise UsageError(f"the ledger {ledger.location} was copied to {where} ({when}, {moved_how(by_run)}): its"
                     f" jobs go on there — run with {there}. Running on here would pay again for what that one sends,"
                     f" and a decision recorded here no run there would see. If the copy is gone and you mean to go on"
                     f" here: `runner ledger reopen {here}` ({done})")


def moved_how(by_run: bool) -> str:
    """How a ledger marked moved was (:func:`~runner.ledger.api.moved_to`), as its refusals say it."""
    return "a run went on from that copy of its folder" if by_run else "`runner ledger copy`"


def state_of(location: str) -> str:
    """The state directory of a SQLite ledger's file (``…/ledger.db``), else ``location`` as it is."""
    path = Path(location)
    return str(path.parent) if path.name == DB_NAME else location


def say_created(ledger: LedgerBackend, say: Notify) -> None:
    if getattr(ledger, "created", False):
        path = getattr(ledger, "path", None)
        say(Notice(f"created a new ledger at {path.absolute() if path is not None else ledger.location}", "notice"))


def path_of(ledger: LedgerBackend) -> Path | None:
    path = getattr(ledger, "path", None)  # SQLite: its file; PostgreSQL: None (see ledger.location)
    return path if isinstance(path, Path) else None


def without_passwords(argv: Sequence[str]) -> list[str]:
    """``argv`` as the ledger's run history records it: a ledger URL's password left out."""
    if not any("postgres" in word for word in argv):  # no URL in it (a SQLite run never loads the backend)
        return list(argv)
    from runner.ledger.postgres.urls import without_password

    return [without_password(word) for word in argv]


def header(command: str, manifest: Path | None, state_dir: Path, url: str | None) -> Notice:
    """The run's first line: the runner's version, the command, the manifest, the ledger (a PostgreSQL URL
    without its password) and the state directory — what a cron log needs to tell one run from another."""
    from runner import __version__

    ledger = without_passwords([url])[0] if url else str((state_dir / DB_NAME).absolute())
    where = str(manifest) if manifest is not None else "(no manifest: everything outstanding in the ledger)"
    fields = {"event": "start", "version": __version__, "command": command,
              "manifest": None if manifest is None else str(manifest), "ledger": ledger,
              "state_dir": str(state_dir.absolute())}
    return Notice(f"runner {__version__} {command} {where} · ledger {ledger} · state dir {state_dir.absolute()}",
                  fields=fields)
