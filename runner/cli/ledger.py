"""`runner ledger copy SRC DST`: a ledger from SQLite to PostgreSQL or back."""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli.common import guarded, say

__all__ = ["ledger_group"]


@click.group("ledger")
def ledger_group() -> None:
    """Manage the ledger itself (copy it between SQLite and PostgreSQL; reopen a copied one).

    \b
    Example:
      runner ledger copy state/ postgresql://me@db.example:5432/batch
    """


@ledger_group.command("copy")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.option("--state", "journals", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A PostgreSQL SRC: the state directory a host ran with, whose rescue journal is recorded in SRC"
                   " first (repeat it for each host's).")
@guarded
def copy_cmd(src: str, dst: str, journals: tuple[Path, ...]) -> None:
    """Copy the ledger at SRC into DST, every job, attempt and run as it is; DST must hold no ledger yet.

    SRC and DST are each a state directory (its ledger.db) or a PostgreSQL URL
    (postgresql://user@host:port/dbname; the password from the URL, PGPASSWORD or
    ~/.pgpass). Refused while a runner holds SRC; a failed copy leaves nothing in DST;
    one killed or stopped (Ctrl-C) leaves one that runs refuse: copy again.
    Then run with --ledger DST (PostgreSQL) or --state DST (SQLite).

    Task ids a stopped run could not record are kept in its state directory
    (rescue.jsonl) until the next run there records them. A state directory SRC's
    are recorded first. A PostgreSQL SRC's are in each host's state directory:
    the copy records those of each --state DIR and of the one a run from here
    would use (RUNNER_STATE_DIR, else ./state) if it ran on SRC; on any other host,
    run `runner collect` first (it sends nothing new), or its jobs are held in
    doubt in the copy. A journal that cannot be read refuses the copy.

    \b
    Examples:
      runner ledger copy state/ postgresql://me@db.example:5432/batch
      runner ledger copy postgresql://me@db.example:5432/batch state-copy/ --state state/
    """
    import sys

    from runner.cli.common import cli_notify, say
    from runner.ledger.postgres.urls import is_postgres_url
    from runner.reporting.ticker import Ticker
    from runner.service.copying import copy_ledger
    from runner.service.reboot_warning import warn_emptied_at_boot

    if not is_postgres_url(dst):  # a state directory a reboot empties: the copy's jobs would be paid for again
        warn_emptied_at_boot(Path(dst), cli_notify, ledger_in_database=False,
                             fix="Copy the ledger again, to a folder on a disk you keep")
    ticker = Ticker(say, "ledger copy: {done} of {total} row(s) copied", tty=sys.stderr.isatty())
    report = copy_ledger(src, dst, journals, progress=ticker.of)
    rows = ", ".join(f"{n} {table}" for table, n in report.rows.items() if n)
    click.echo(f"copied {report.source} to {report.destination}: {rows or 'no rows'}")


@ledger_group.command("reopen")
@click.argument("location", metavar="LOCATION")
@guarded
def reopen_cmd(location: str) -> None:
    """Let runs use a ledger `runner ledger copy` marked moved, again (the copy is gone, or was a trial); and a
    PostgreSQL ledger copied or moved by other tools (pg_dump, CREATE DATABASE … TEMPLATE, a new server), where it is.

    LOCATION is a state directory (its ledger.db) or a PostgreSQL URL. Runs on both the
    copy and this ledger would each pay for the jobs still pending: keep one. A PostgreSQL
    ledger refused as made elsewhere becomes at home where LOCATION finds it: never run
    the one it was made at again (refused while that one, on the same server, holds
    submissions this one does not: copy it with `runner ledger copy` instead).

    \b
    Examples:
      runner ledger reopen state/
      runner ledger reopen postgresql://me@db.example:5432/batch
    """
    from runner.ledger.postgres.urls import is_postgres_url
    from runner.service.copying import adopt_home, reopen_ledger
    from runner.service.opening import without_passwords

    home = adopt_home(location) if is_postgres_url(location) else None
    if home:
        say(f"{without_passwords([location])[0]} is this ledger's home now (it was made at {home}): a run on the ledger there would read the"
            " jobs runs here send as pending and pay for them again. Never run it again (drop it, or point its hosts"
            " here)", "warning")
    was = reopen_ledger(location)
    click.echo(f"{location}: runs may use it again" + (f" (it was marked copied to {was})" if was else
                                                        " (it was not marked moved)"))
    if was and Path(was).name == "ledger.db" and Path(was).exists():  # a SQLite copy (a URL's database: not looked at)
        say(f"{was} is still there: a run on it and a run here would each pay for every job still pending (what one"
            f" sends reads pending in the other). Keep one: move {Path(was).parent} aside if this one goes on, or"
            f" run only there (nothing was sent)", "warning")
