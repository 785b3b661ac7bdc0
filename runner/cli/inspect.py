"""Commands that read the manifest and the ledger, never write it: plan, status, export (jsonl, csv, hf)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import shlex
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from runner.cli.common import MANIFEST_PATH, cli_notify, guarded, say, state_option
from runner.cli.deadline import deadline_option, parse_deadline
from runner.cli.forecast import forecast_options
from runner.cli.group import OptionalValueCommand
from runner.cli.output import reader_may_leave
from runner.errors import DiskError, UsageError
from runner.jobs import JobState
from runner.ledger import JobRecord
from runner.ledger.rescue import crash_point
from runner.reporting.eta import forecast_lines
from runner.reporting.json_lines import json_line
from runner.service.left_behind import COUNTED_UP_TO, left_behind_text
from runner.service.limits_bind import binding_text
from runner.service.planning import plan
from runner.service.state import refuse_inside_state, refuse_source_file, resolve_state
from runner.storage.api import WHOLE_DISK_ERRNOS, whole_disk_fix

__all__ = ["export_cmd", "manifest_arg", "plan_cmd", "status_cmd"]

manifest_arg = click.argument("manifest", type=MANIFEST_PATH)

@click.command("plan")
@manifest_arg
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--list", "as_list", is_flag=True, help="Print one JSON line per job: key, state, request, vars, repeat, output.")
@forecast_options
@deadline_option
@guarded
def plan_cmd(manifest: Path, state_dir: Path | None, as_json: bool, as_list: bool, deadline: str | None,
             **limits: str | None) -> None:
    """Expand and check MANIFEST without touching the network; say what a run would do and cost.

    Reads the ledger (never writes it) to tell jobs already done, running or in doubt.

    \b
    Examples:
      runner plan manifests/cities.yaml
      runner plan manifests/bulk-csv.yaml --json
      runner plan manifests/demo.yaml --list | head -3
      runner plan manifests/cities.yaml --concurrency 8 --deadline 07:00
    """
    out = sys.stdout

    def each_job(row: dict[str, Any]) -> None:
        out.write(json_line(row) + "\n")

    by = None if deadline is None else parse_deadline(deadline, now=dt.datetime.now().astimezone().replace(microsecond=0))
    result = plan(manifest, state_dir, each_job=each_job if as_list else None, notify=cli_notify, limits=limits,
                  deadline=by)
    if as_list:
        return
    summary = result.as_dict()
    spec_name, cost_new, spent, spent_dropped = result.name, result.cost_new, result.spent, result.spent_dropped
    budget, renames, in_the_way, total = result.budget_usd, result.renames, result.renames_blocked, result.jobs
    counts = result.counts
    if as_json:
        click.echo(json.dumps(summary))
        return
    models = ", ".join(f"{n} of {model}" for model, n in sorted(result.per_model.items()))
    only = next(iter(result.per_model), result.model)  # one model: its jobs' own (an axis), not the top-level one
    click.echo(f"{spec_name}: {total} job(s)" + (f": {models}" if len(result.per_model) > 1 else f" of {only}"))
    for state in JobState:
        if counts.get(str(state)):
            click.echo(f"  {state:<11} {counts[str(state)]}")
    more = " for those with a price" if result.unpriced else ""
    click.echo(f"would submit {summary['to_submit']} job(s): about {cost_new:.2f} USD (estimate){more}")
    for model, n in sorted(result.unpriced.items()):
        click.echo(f"  {n} job(s) of {model}: no known price (not in the estimate); add pricing: {{{model}:"
                   " {per_second: …}} to the manifest to estimate them and to run them with a budget")
    for model, (n, why) in sorted(result.at_most.items()):
        click.echo(f"  {n} job(s) of {model} {why}")
    click.echo(binding_text(result.binding))
    click.echo(f"ledger: {summary['ledger']}")
    for line in forecast_lines(result.forecast) if result.forecast is not None else ():
        click.echo(line)
    if spent:
        dropped = f", of which {spent_dropped:.2f} USD on jobs no longer in it" if spent_dropped else ""
        click.echo(f"already spent on {spec_name}: about {spent:.2f} USD (estimate){dropped}; the budget counts it")
    if result.left_behind is None:
        click.echo(f"note: {spec_name} changed since it was last planned, and it lists more than {COUNTED_UP_TO:,}"
                   " paid jobs: plan does not count whether the edit leaves any of them behind (a value they send"
                   " changed); `runner run` counts them and says so before it sends anything")
    elif (left := left_behind_text(spec_name, result.left_behind, planned=False)) is not None:
        click.echo(f"note: {left}")
    if budget is not None and spent + cost_new > budget:
        click.echo(f"note: that passes the budget of {budget:.2f} USD; a run stops submitting there")
    if renames:
        click.echo(f"the next run renames {renames} stored video(s) to the names the manifest gives them now")
    for dest in in_the_way[:5]:
        click.echo(f"note: {dest} holds a file the ledger does not know: the video meant for that name keeps its"
                   " old one until the file is moved away")
    if len(in_the_way) > 5:
        click.echo(f"note: {len(in_the_way) - 5} more name(s) are blocked the same way (see --json)")


@click.command("status", cls=OptionalValueCommand)
@manifest_arg
@state_option
@click.option("--json", "as_json", is_flag=True,
              help='Print {"total": N, "counts": {state: n, …}, …} (more keys: spend, oldest running, expiry).')
@click.option("--watch", "every", type=click.FloatRange(min=0, min_open=True), is_flag=False, flag_value=2.0,
              default=None, metavar="[SECONDS]",
              help="Refresh every SECONDS (2 if not said) until Ctrl-C: a live view of a run (as `runner top`);"
                   " with --json, one object per refresh.")
@guarded
def status_cmd(manifest: Path, state_dir: Path | None, as_json: bool, every: float | None) -> None:
    """Show MANIFEST's jobs by state, the estimated spend, the oldest running task and the earliest URL expiry.

    Reads the ledger only; safe while a run is working. With --watch, again every few
    seconds until Ctrl-C, with done per minute, outstanding tasks and the ETA.

    \b
    Examples:
      runner status manifests/demo.yaml
      runner status manifests/demo.yaml --json | jq .counts.in_doubt
      runner status manifests/demo.yaml --watch 5
    """
    from runner.reporting.inspect import status_dict, status_lines  # status only: `plan` does not need it

    if every is not None:
        from runner.cli.watch import watch_status

        watch_status(manifest, state_dir, every, as_json)
        return
    from runner.service.reading import status  # here, not at the top: `runner plan` need not import it

    summary = status(manifest, state_dir, notify=cli_notify)
    if as_json:
        click.echo(json.dumps(status_dict(summary)))
        return
    from runner.service.hints import ledger_words
    from runner.service.state import ledger_url

    # the commands its hints suggest find this ledger as printed: --state as given, a PostgreSQL ledger's --ledger
    words, told = ledger_words(state_dir, ledger_url())
    lines = status_lines(summary, manifest_path=" ".join([shlex.quote(str(manifest)), *words]))
    for line in lines + ([f"note: {told}"] if told and any("`runner " in line for line in lines) else []):
        click.echo(line)


def _left_out(rejected: int, manifest: Path, state_dir: Path | None) -> str:
    """An export's line for the rejected clips it leaves out, with the command that makes new ones (this ledger)."""
    from runner.service.hints import runner_command

    regenerate, told = runner_command("regenerate", manifest, state_dir=state_dir)
    return f"left out: {rejected} rejected clip(s) (`{regenerate}` makes new ones{'; ' + told if told else ''})"


EXPORT_FIELDS = ["key", "state", "task_id", "request", "vars", "repeat", "output", "path", "sha256", "bytes",
                 "estimated_usd", "spent_usd", "attempts", "error", "review"]  # a column added goes last: csv readers
# that take columns by position (cut -f, a spreadsheet's formulas) keep theirs


_FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula (OWASP)
_ADDED = "'"  # put before such a cell; before one that starts with it too, so a reader can take one off every cell


def _cell(value: Any) -> Any:
    """A CSV cell: text a spreadsheet would run as a formula (a provider's failure reason "=HYPERLINK(…)") gets a
    ``'`` before it, so it opens as the text it is; so does text that starts with ``'``, so the rule "a cell that
    starts with ``'`` had one added" gives every value back exactly (JSONL carries them as they are)."""
    return f"{_ADDED}{value}" if isinstance(value, str) and value.startswith((*_FORMULA_FIRST, _ADDED)) else value


@click.command("export")
@manifest_arg
@state_option
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "hf"]), default="jsonl", show_default=True,
              help="jsonl / csv: one record per job; hf: a Hugging Face `datasets` folder (videos + metadata.jsonl).")
@click.option("--to", "dest", type=click.Path(path_type=Path), default=None,
              help="jsonl / csv: write this file instead of stdout. hf: the folder to write (required). A folder not"
                   " there yet is made.")
@click.option("--include-rejected", is_flag=True,
              help="Keep the clips rejected in review (left out by default); each row's review column says which.")
@guarded
def export_cmd(manifest: Path, state_dir: Path | None, fmt: str, dest: Path | None, include_rejected: bool) -> None:
    """Export MANIFEST's jobs: key, state, task_id, the exact request, vars, path, sha256, cost…

    With --format hf, write a folder that Hugging Face `datasets` loads as it is
    (load_dataset(DIR): one train split, whatever the folder names): the videos
    of the done jobs, hard-linked (or copied) under their output names, beside a
    metadata.jsonl whose rows carry file_name, text, every variable, the request
    fields, task_id, sha256, the provider's timings and the estimated cost, and a
    dataset card (README.md) ready for `hf upload`. A re-export
    removes the files of jobs no longer exported (unless changed since). DIR must be
    empty or made by runner export: it changes nothing it did not write.
    Each record says its clip's review: accepted, unreviewed (or rejected:
    clips rejected in review are left out unless --include-rejected).

    In jsonl / csv, `path` opens the video: with --to FILE it is relative to
    FILE's folder (from wherever the export ran); on stdout, relative to the
    working directory (so with --to /dev/stdout). In csv, a text cell starting with = + - @ (a formula to
    a spreadsheet) or ' gets a ' before it: take one ' off to read it exactly.

    \b
    Examples:
      runner export manifests/demo.yaml --format jsonl > demo.jsonl
      runner export manifests/demo.yaml --format csv --to demo.csv
      runner export manifests/demo.yaml --format hf --to datasets/demo
      runner export manifests/demo.yaml --format csv --to all.csv --include-rejected
    """
    from runner.reporting.dataset import METADATA_FILE  # here, not at the top: `runner plan` need not import these
    from runner.reporting.records import job_row
    from runner.reporting.ticker import Ticker
    from runner.reporting.whole_file import whole_file
    from runner.service.reading import jobs, to_hf

    if fmt == "hf":
        if dest is None:
            raise UsageError("--format hf writes a folder: say where with --to DIR")
        ticker = Ticker(say, "export: {done} of {total} video(s) placed", tty=sys.stderr.isatty())
        name, result = to_hf(manifest, dest, state_dir, include_rejected=include_rejected, ticker=ticker)
        how = f"{result.linked} hard-linked, {result.copied} copied, {result.removed} no longer exported removed"
        say(f"exported {result.rows} video(s) of {name} to {dest} ({how}); rows in {dest / METADATA_FILE}")
        if result.not_done:
            others = ", ".join(f"{n} {state_name}" for state_name, n in sorted(result.not_done.items()))
            say(f"left out (no video): {others}")
        if result.excluded:
            say(_left_out(result.excluded, manifest, state_dir))
        if result.changed:
            say(f"{len(result.changed)} file(s) of jobs no longer exported left in {dest}: changed since the"
                f" export wrote them (first: {result.changed[0]})", "warning")
        if result.only_copy:
            say(f"{len(result.only_copy)} file(s) of jobs no longer exported left in {dest}: the state directory holds"
                f" no other copy of those videos (first: {result.only_copy[0]}): keep them", "warning")
        if result.missing:
            say(f"{len(result.missing)} done job(s) left out: their stored file is missing or"
                f" altered (first: {result.missing[0]}); see `runner show KEY`", "warning")
        if result.inputs_missing:
            say(f"{len(result.inputs_missing)} row(s) without their input image: the file is gone or no longer the"
                f" bytes that were sent (first: {result.inputs_missing[0]}); its image column is empty", "warning")
        click.echo(str(dest))
        return
    if dest is not None and dest.is_dir():
        raise UsageError(f"--to {dest} is a folder; --format {fmt} writes one file (use --format hf for a folder)")
    if dest is not None:
        refuse_inside_state(dest, resolve_state(state_dir, manifest))
    # A file is written whole or not at all (whole_file): a full disk or a stop halfway leaves an earlier export as
    # it was, never cut in the middle of a line.
    rejected, tick = 0, Ticker(say, "export: {done} of {total} record(s) written", tty=sys.stderr.isatty())

    def kept(job: JobRecord) -> bool:
        nonlocal rejected
        tick()
        if include_rejected or job.review != "rejected":
            return True
        rejected += 1
        return False

    with jobs(manifest, state_dir) as found, reader_may_leave(), _cannot_write(dest), \
            (whole_file(_made_folder(_not_read(dest, found.sources)), newline="") if dest is not None
             else contextlib.nullcontext(sys.stdout)) as stream:
        folder = _records_folder(dest)
        tick.of(found.total or 0)
        rows = (job_row(job, found.store, relative_to=folder) for job in found.records if kept(job))
        if fmt == "jsonl":
            for row in rows:
                stream.write(json_line(row) + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=EXPORT_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else _cell(v)
                                 for k, v in row.items()})
        crash_point("export-rows")  # tests: killed with every row written, the file not yet in place
    if rejected:  # as the hf export says it: a row fewer than the done jobs is no lost video
        say(_left_out(rejected, manifest, state_dir))


def _not_read(dest: Path, sources: tuple[str, ...]) -> Path:
    """``dest``, refused when it is the manifest or a file the manifest reads (:func:`refuse_source_file`)."""
    refuse_source_file(dest, sources)
    return dest


def _made_folder(dest: Path) -> Path:
    """``dest``, its folder made if it is not there yet (as the hf export and the report make theirs: a cron job's
    dated folder); one that cannot be made is an OSError naming ``dest`` (:func:`_cannot_write` says it)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file is there, not a folder" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot make its folder {dest.parent} ({why})", str(dest)) from exc
    return dest


def _records_folder(dest: Path | None) -> Path | None:
    """The folder an export's ``path`` values are relative to: the ``--to`` file's; None (the working directory) on
    stdout and on a ``--to`` that is no file of a folder (``/dev/stdout``, a FIFO: read where it is read). A name of a
    descriptor (``/dev/stdout``, ``/dev/fd/N``: in ``/dev`` or ``/proc``) is stdout's even when the shell sent it to a
    regular file (``--to /dev/stdout > FILE``): relative to ``/dev`` its paths led nowhere."""
    from runner.reporting.whole_file import names_descriptor

    if dest is None or names_descriptor(dest):
        return None
    try:
        if not stat.S_ISREG(os.stat(dest).st_mode):
            return None
    except OSError:
        pass  # not there yet: the file this export makes
    return dest.parent


@contextlib.contextmanager
def _cannot_write(dest: Path | None) -> Iterator[None]:
    """An OSError of the file ``--to`` names (:func:`whole_file` names it): a full disk, a quota or a file size limit
    is exit 6 (someone must act; the earlier file is unchanged), anything else (no such folder, no permission) 2."""
    try:
        yield
    except OSError as exc:
        if dest is None or exc.filename != str(dest):
            raise
        if exc.errno in WHOLE_DISK_ERRNOS:
            raise DiskError(f"cannot write {dest}: {exc.strerror or exc}; {whole_disk_fix(exc.errno)} (an earlier"
                            " export there is unchanged)") from exc
        raise UsageError(f"cannot write {dest}: {exc.strerror or exc}") from exc
