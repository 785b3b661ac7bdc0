"""`runner ledger copy SRC DST`: a ledger from SQLite to PostgreSQL or back."""

from __future__ import annotations

import click

from runner.cli.common import guarded

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
@guarded
def copy_cmd(src: str, dst: str) -> None:
    """Copy the ledger at SRC into DST, every job, attempt and run as it is; DST must hold no ledger yet.

    SRC and DST are each a state directory (its ledger.db) or a PostgreSQL URL
    (postgresql://user@host:port/dbname; the password from the URL, PGPASSWORD or
    ~/.pgpass). Refused while a runner holds SRC; a failed copy leaves nothing in DST;
    one killed or stopped (Ctrl-C) leaves one that runs refuse: copy again.
    Then run with --ledger DST (PostgreSQL) or --state DST (SQLite).

    \b
    Examples:
      runner ledger copy state/ postgresql://me@db.example:5432/batch
      runner ledger copy postgresql://me@db.example:5432/batch state-copy/
    """
    import sys
    from pathlib import Path

    from runner.cli.common import cli_notify, say
    from runner.ledger.postgres.urls import is_postgres_url
    from runner.reporting.ticker import Ticker
    from runner.service.copying import copy_ledger
    from runner.service.reboot_warning import warn_emptied_at_boot

    if not is_postgres_url(dst):  # a state directory a reboot empties: the copy's jobs would be paid for again
        warn_emptied_at_boot(Path(dst), cli_notify, ledger_in_database=False,
                             fix="Copy the ledger again, to a folder on a disk you keep")
    ticker = Ticker(say, "ledger copy: {done} of {total} row(s) copied", tty=sys.stderr.isatty())
    report = copy_ledger(src, dst, progress=ticker.of)
    rows = ", ".join(f"{n} {table}" for table, n in report.rows.items() if n)
    click.echo(f"copied {report.source} to {report.destination}: {rows or 'no rows'}")


@ledger_group.command("reopen")
@click.argument("location", metavar="LOCATION")
@guarded
def reopen_cmd(location: str) -> None:
    """Let runs use a ledger `runner ledger copy` marked moved, again (the copy is gone, or was a trial).

    LOCATION is a state directory (its ledger.db) or a PostgreSQL URL. Runs on both the
    copy and this ledger would each pay for the jobs still pending: keep one.

    \b
    Example:
      runner ledger reopen state/
    """
    from runner.service.copying import reopen_ledger

    was = reopen_ledger(location)
    click.echo(f"{location}: runs may use it again" + (f" (it was marked copied to {was})" if was else
                                                        " (it was not marked moved)"))
