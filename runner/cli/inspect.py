"""Commands that read the manifest and the ledger: plan, status, export (jsonl, csv, hf), retry."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import click

from runner.cli.adopt import (
    base_url_option,
    check_ledger_provider,
    look_up_tasks,
    provider_from_env,
)
from runner.cli.common import (
    EXIT_FAILED,
    guarded,
    resolve_state,
    state_option,
    warn_if_ledger_missing,
)
from runner.cli.forecast import forecast_options, plan_forecast  # issue 12 item 2: plan's wall time
from runner.cli.output import reader_may_leave
from runner.errors import UsageError
from runner.jobs import JobSpec, JobState
from runner.layout import manifest_folder
from runner.ledger import DB_NAME, JobRecord, is_foreign, open_ledger
from runner.manifest import expand, load_manifest
from runner.pricing import Price
from runner.reporting.dataset import METADATA_FILE, export_hf
from runner.reporting.eta import forecast_dict, forecast_lines
from runner.reporting.inspect import job_row, status_dict, status_lines, status_summary
from runner.storage.local import LocalStore

manifest_arg = click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))

LOOKUP_BATCH = 500


def _batches(jobs: Iterator[JobSpec], size: int) -> Iterator[list[JobSpec]]:
    while batch := list(islice(jobs, size)):
        yield batch


@click.command("plan")
@manifest_arg
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--list", "as_list", is_flag=True, help="Print one JSON line per job: key, state, request, vars, repeat, output.")
@forecast_options
@guarded
def plan_cmd(manifest: Path, state_dir: Path | None, as_json: bool, as_list: bool, **limits: str | None) -> None:
    """Expand and check MANIFEST without touching the network; say what a run would do and cost.

    Reads the ledger (never writes it) to tell jobs already done, running or in doubt.

    \b
    Examples:
      runner plan manifests/cities.yaml
      runner plan manifests/bulk-csv.yaml --json
      runner plan manifests/demo.yaml --list | head -3
    """
    spec = load_manifest(manifest)
    counts: Counter[str] = Counter()
    per_model: Counter[str] = Counter()
    unpriced: Counter[str] = Counter()  # jobs to submit whose model has no known price
    total = 0
    cost_new = 0.0
    cost_all = 0.0
    out = sys.stdout
    folder = manifest_folder(spec.name)
    renames: dict[str, str] = {}  # stored file → the name the manifest gives it now
    where = resolve_state(state_dir, manifest)
    warn_if_ledger_missing(where)
    no_price = set(spec.unpriced_models())
    with open_ledger(where, readonly=True) as ledger:
        for batch in _batches(expand(spec), LOOKUP_BATCH):
            states = ledger.states_of([job.key for job in batch])
            done = [job.key for job in batch if states.get(job.key) is JobState.DONE]
            stored = ledger.stored_paths(done) if done else {}
            for job in batch:
                state = states.get(job.key, JobState.PENDING)
                path = stored.get(job.key)
                if path is not None and path.startswith(folder) and path != folder + job.output:
                    renames[path] = folder + job.output
                counts[str(state)] += 1
                total += 1
                cost_all += job.estimated_usd
                per_model[job.model] += 1
                if state is JobState.PENDING:
                    cost_new += job.estimated_usd
                    if job.model in no_price:
                        unpriced[job.model] += 1
                if as_list:
                    out.write(json.dumps({
                        "key": job.key, "state": str(state), "request": job.request, "vars": job.vars,
                        "repeat": job.repeat, "output": job.output,
                    }, ensure_ascii=False) + "\n")
        spent = ledger.spent_usd(spec.name)
        spent_dropped = ledger.dropped_spent_usd(spec.name)
        in_the_way = [] if as_list else sorted(
            dest for dest in renames.values() if dest not in renames and is_foreign(ledger, dest))
        eta = plan_forecast(spec, ledger, counts, limits)
    if as_list:
        return
    summary = {
        "manifest": str(manifest),
        "name": spec.name,
        "model": spec.model,
        "jobs": total,
        "counts": {str(s): counts.get(str(s), 0) for s in JobState},
        "to_submit": counts.get(str(JobState.PENDING), 0),
        "estimated_usd_to_submit": round(cost_new, 4),
        "estimated_usd_total": round(cost_all, 4),
        "budget_usd": spec.limits.budget_usd,
        "estimated_usd_spent": round(spent, 4),
        "estimated_usd_spent_on_dropped_jobs": round(spent_dropped, 4),
        "renames": len(renames),
        "renames_blocked": in_the_way,
        "estimate_note": "estimates from a price table (USD per output second), not the provider's bill",
        "models": {model: {"jobs": n, "price_per_second": _price_json(spec.price_for(model))}
                   for model, n in sorted(per_model.items())},
        "no_known_price": sorted(no_price & set(per_model)),  # their jobs count 0 in the estimates
        "unpriced_to_submit": dict(sorted(unpriced.items())),
        "ledger": str((where / DB_NAME).absolute()),
        "forecast": forecast_dict(eta),
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    models = ", ".join(f"{n} of {model}" for model, n in sorted(per_model.items())) or f"0 of {spec.model}"
    click.echo(f"{spec.name}: {total} job(s)" + (f" of {spec.model}" if len(per_model) <= 1 else f": {models}"))
    for state in JobState:
        if counts.get(str(state)):
            click.echo(f"  {state:<11} {counts[str(state)]}")
    more = " for those with a price" if unpriced else ""
    click.echo(f"would submit {summary['to_submit']} job(s): about {cost_new:.2f} USD (estimate){more}")
    for model, n in sorted(unpriced.items()):
        click.echo(f"  {n} job(s) of {model}: no known price (not in the estimate); add pricing: {{{model}:"
                   " {per_second: …}} to the manifest to estimate them and to run them with a budget")
    click.echo(f"ledger: {summary['ledger']}")
    for line in forecast_lines(eta):
        click.echo(line)
    if spent:
        dropped = f", of which {spent_dropped:.2f} USD on jobs no longer in it" if spent_dropped else ""
        click.echo(f"already spent on {spec.name}: about {spent:.2f} USD (estimate){dropped}; the budget counts it")
    if spec.limits.budget_usd is not None and spent + cost_new > spec.limits.budget_usd:
        click.echo(f"note: that passes the budget of {spec.limits.budget_usd:.2f} USD; a run stops submitting there")
    if renames:
        click.echo(f"the next run renames {len(renames)} stored video(s) to the names the manifest gives them now")
    for dest in in_the_way[:5]:
        click.echo(f"note: {dest} holds a file the ledger does not know: the video meant for that name keeps its"
                   " old one until the file is moved away")
    if len(in_the_way) > 5:
        click.echo(f"note: {len(in_the_way) - 5} more name(s) are blocked the same way (see --json)")


def _price_json(price: Price | None) -> dict[str, float] | None:
    return None if price is None else {"silent": price.per_second, "sound": price.per_second_sound}


@click.command("status")
@manifest_arg
@state_option
@click.option("--json", "as_json", is_flag=True,
              help='Print {"total": N, "counts": {state: n, …}, …} (more keys: spend, oldest running, expiry).')
@guarded
def status_cmd(manifest: Path, state_dir: Path | None, as_json: bool) -> None:
    """Show MANIFEST's jobs by state, the estimated spend, the oldest running task and the earliest URL expiry.

    Reads the ledger only; safe while a run is working.

    \b
    Examples:
      runner status manifests/demo.yaml
      runner status manifests/demo.yaml --json | jq .counts.in_doubt
    """
    spec = load_manifest(manifest)
    where = resolve_state(state_dir, manifest)
    warn_if_ledger_missing(where)
    with open_ledger(where, readonly=True) as ledger:
        summary = status_summary(ledger, spec.name, now=time.time())
    if as_json:
        click.echo(json.dumps(status_dict(summary)))
        return
    for line in status_lines(summary, manifest_path=str(manifest)):
        click.echo(line)


EXPORT_FIELDS = ["key", "state", "task_id", "request", "vars", "repeat", "output", "path", "sha256", "bytes",
                 "estimated_usd", "spent_usd", "attempts", "error"]


def export_row(job: JobRecord, state_dir: Path) -> dict[str, Any]:
    return job_row(job, LocalStore(state_dir))


@click.command("export")
@manifest_arg
@state_option
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "hf"]), default="jsonl", show_default=True,
              help="jsonl / csv: one record per job; hf: a Hugging Face `datasets` folder (videos + metadata.jsonl).")
@click.option("--to", "dest", type=click.Path(path_type=Path), default=None,
              help="jsonl / csv: write this file instead of stdout. hf: the folder to write (required).")
@guarded
def export_cmd(manifest: Path, state_dir: Path | None, fmt: str, dest: Path | None) -> None:
    """Export MANIFEST's jobs: key, state, task_id, the exact request, vars, path, sha256, cost…

    With --format hf, write a folder that Hugging Face `datasets` loads as it is
    (load_dataset(DIR): one train split, whatever the folder names): the videos
    of the done jobs, hard-linked (or copied) under their output names, beside a
    metadata.jsonl whose rows carry file_name, text, every variable, the request
    fields, task_id, sha256, the provider's timings and the estimated cost, and a
    dataset card (README.md) ready for `huggingface-cli upload`. A re-export
    removes the files of jobs no longer exported.

    \b
    Examples:
      runner export manifests/demo.yaml --format jsonl > demo.jsonl
      runner export manifests/demo.yaml --format csv --to demo.csv
      runner export manifests/demo.yaml --format hf --to datasets/demo
    """
    spec = load_manifest(manifest)
    state = resolve_state(state_dir, manifest)
    if fmt == "hf":
        if dest is None:
            raise UsageError("--format hf writes a folder: say where with --to DIR")
        with open_ledger(state, readonly=True) as ledger:
            result = export_hf(ledger, spec.name, dest, LocalStore(state), inputs_root=manifest.parent)
        how = f"{result.linked} hard-linked, {result.copied} copied, {result.removed} no longer exported removed"
        click.echo(f"runner: exported {result.rows} video(s) of {spec.name} to {dest} ({how});"
                   f" rows in {dest / METADATA_FILE}", err=True)
        if result.not_done:
            others = ", ".join(f"{n} {state_name}" for state_name, n in sorted(result.not_done.items()))
            click.echo(f"runner: left out (no video): {others}", err=True)
        if result.missing:
            click.secho(f"runner: {len(result.missing)} done job(s) left out: their stored file is missing or"
                        f" altered (first: {result.missing[0]}); see `runner show KEY`", err=True, fg="yellow")
        click.echo(str(dest))
        return
    if dest is not None and dest.is_dir():
        raise UsageError(f"--to {dest} is a folder; --format {fmt} writes one file (use --format hf for a folder)")
    try:
        stream = dest.open("w", newline="", encoding="utf-8") if dest is not None else sys.stdout
    except OSError as exc:
        raise UsageError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    try:
        with open_ledger(state, readonly=True) as ledger, reader_may_leave():
            store = LocalStore(state)
            rows = (job_row(job, store) for job in ledger.iter_jobs(spec.name))
            if fmt == "jsonl":
                for row in rows:
                    stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                writer = csv.DictWriter(stream, fieldnames=EXPORT_FIELDS)
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                                     for k, v in row.items()})
    finally:
        if dest is not None:
            stream.close()


@click.command("retry")
@manifest_arg
@state_option
@click.option("--failed", "which", flag_value="failed", help="Send failed jobs again (each a new paid task).")
@click.option("--in-doubt", "which", flag_value="in_doubt",
              help="Send in-doubt jobs again: pays twice for any the provider did create.")
@click.option("--lost", "which", flag_value="lost",
              help="Ask the provider again for each lost job's task; collect those it still knows (pays nothing).")
@base_url_option
@guarded
def retry_cmd(manifest: Path, state_dir: Path | None, which: str | None, base_url: str | None) -> None:
    """Put MANIFEST's failed or in-doubt jobs back to pending, after saying how many and the cost;
    or, with --lost, reopen lost jobs whose task the provider still knows and collect them.

    The next `runner run` submits jobs put back to pending. --lost sends no submit: it polls
    each lost job's task once (task-result GET); a task the provider answers for goes back to
    running and is collected at once; tasks still not found are listed and stay lost.

    \b
    Examples:
      runner retry manifests/demo.yaml --failed
      runner retry manifests/demo.yaml --in-doubt && runner run manifests/demo.yaml
      runner retry manifests/demo.yaml --lost
    """
    if which is None:
        raise UsageError("say which jobs to retry: --failed, --in-doubt or --lost")
    if which == "lost":
        _retry_lost(manifest, state_dir, base_url)
        return
    state = JobState(which)
    spec = load_manifest(manifest)
    with open_ledger(resolve_state(state_dir, manifest), create=False) as ledger:
        ledger.apply_rescue()  # a journalled task id is recorded, never quoted (and paid) again
        cost = ledger.estimate_usd(spec.name, [state])
        moved = ledger.reset(spec.name, state)
        if not moved:
            click.echo(f"no {state} jobs in {spec.name}")
            return
        warning = " (each may already have been paid for once)" if state is JobState.IN_DOUBT else ""
        click.echo(f"{moved} {state} job(s) back to pending: about {cost:.2f} USD (estimate) when submitted{warning}")
        click.echo(f"next: runner run {manifest}")


def _retry_lost(manifest: Path, state_dir: Path | None, base_url: str | None) -> None:
    """Poll each lost job's task again; reopen those the provider knows (lost → running), then collect."""
    # The engine is imported only when there is something to collect.
    from runner.cli.run import COLLECT, drive

    spec = load_manifest(manifest)
    endpoint, api_key = provider_from_env(base_url)
    state = resolve_state(state_dir, manifest)
    with open_ledger(state, create=False) as ledger:
        check_ledger_provider(ledger, endpoint)
        lost = list(ledger.iter_jobs(spec.name, states=[JobState.LOST]))
        # Paid jobs an edit dropped from the manifest are still collected (orphans): reopened too.
        lost += [job for job in map(ledger.get, ledger.orphan_keys(spec.name, JobState.LOST)) if job is not None]
        lost = [job for job in lost if job.task_id]
        if not lost:
            click.echo(f"no lost jobs in {spec.name}")
            return
        answers = look_up_tasks(endpoint, api_key, [job.task_id for job in lost if job.task_id])
        reopened, gone = [], []
        for job in lost:
            assert job.task_id is not None
            result = answers.get(job.task_id)
            if result is None:
                gone.append(job)
                continue
            ledger.reopen_lost(job.key, detail=f"`runner retry --lost`: the provider knows task {job.task_id}"
                                                f" ({result.task.status})")
            reopened.append(job)
    click.echo(f"{len(reopened)} lost job(s) reopened: the provider still knows their tasks")
    for job in gone:
        click.echo(f"still not found: job {job.key} (task {job.task_id}); it stays lost")
    if not reopened:
        sys.exit(EXIT_FAILED)
    sys.exit(drive(COLLECT, manifest, {"state_dir": state_dir, "base_url": base_url}))
