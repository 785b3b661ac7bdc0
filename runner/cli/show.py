"""`runner show` (one job and its attempts) and `runner ls` (a manifest's jobs, filtered by state)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import click

from runner.cli.common import MANIFEST_PATH, STATE_HELP, guarded, ledger_option, say
from runner.cli.output import reader_may_leave
from runner.errors import UsageError
from runner.jobs import JobState
from runner.reporting.inspect import detail_dict, detail_lines, ls_lines
from runner.reporting.json_lines import json_line
from runner.reporting.records import job_row
from runner.service.reading import jobs, show

__all__ = ["ls_cmd", "parse_states", "show_cmd"]

_STATE_NAMES = ", ".join(str(s) for s in JobState)
REJECTED = "rejected"  # `ls --only rejected`: the done clips rejected in review
_ALIASES = {"in-doubt": "in_doubt", "indoubt": "in_doubt", "problems": "failed,lost,in_doubt",
            "outstanding": "submitting,running,succeeded", "all": ",".join(str(s) for s in JobState)}


def parse_states(values: tuple[str, ...]) -> list[JobState] | None:
    """``--only failed --only lost`` or ``--only failed,lost`` → states; nothing given → None (all)."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().lower()
            if part:
                names.extend(_ALIASES.get(part, part).split(","))
    if not names:
        return None
    states: list[JobState] = []
    for name in names:
        try:
            states.append(JobState(name))
        except ValueError:
            hint = " (the state directory is --state)" if "/" in name or Path(name).is_dir() else ""
            raise UsageError(f"--only {name!r} is not a job state; use one of {_STATE_NAMES},"
                             f" or problems, outstanding, all, rejected{hint}") from None
    return states


@click.command("show")
@click.argument("key")
@ledger_option
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="RUNNER_STATE_DIR", show_envvar=True,
              help="Directory holding the ledger and the outputs  [default: ./state, the state/ folder of the"
                   " current directory: show takes no manifest to find it from]")
@click.option("--json", "as_json", is_flag=True, help="Print the job and its attempts as one JSON object.")
@guarded
def show_cmd(key: str, state_dir: Path | None, as_json: bool) -> None:
    """Show one job: its request, state, files, spend, provider timings and every attempt.

    KEY is a job key, a unique prefix of one (as `runner ls` prints), or a task_id.

    \b
    Examples:
      runner show 53a6753e
      runner show 53a6753e4fbd5c6b9cfe --state state/ --json | jq .attempts
    """
    detail = show(key, state_dir)
    with reader_may_leave():
        if as_json:
            click.echo(json.dumps(detail_dict(detail), ensure_ascii=False))
            return
        for line in detail_lines(detail):
            click.echo(line)


@click.command("ls")
@click.argument("manifest", type=MANIFEST_PATH)
@ledger_option
@click.option("--state", "state_words", multiple=True, metavar="DIR",
              help=f"{STATE_HELP}  [env var: RUNNER_STATE_DIR]")
@click.option("--state-dir", "state_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="RUNNER_STATE_DIR", hidden=True, help="The former name of --state here.")
@click.option("--only", "states", multiple=True, metavar="STATE[,STATE…]",
              help=f"Only jobs in these states ({_STATE_NAMES}; also problems = failed,lost,in_doubt,"
                   " outstanding, all; rejected = the done clips rejected in review). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job per line (as export --format jsonl).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many jobs.")
@guarded
def ls_cmd(manifest: Path, state_words: tuple[str, ...], state_dir: Path | None, states: tuple[str, ...],
           as_json: bool, limit: int | None) -> None:
    """List MANIFEST's jobs, one per line: key, state, variables, output, task_id and error.

    --state is the state directory, as in every command; --only filters by job state.

    \b
    Examples:
      runner ls manifests/demo.yaml --only failed
      runner ls manifests/demo.yaml --only rejected     # clips rejected in review, not yet regenerated
      runner ls manifests/demo.yaml --only problems --json | jq -r .key
      runner ls manifests/demo.yaml --state /srv/videos/state --limit 20
    """
    state_dir, states = _state_or_states(state_words, state_dir, states)
    words = [w.strip().lower() for value in states for w in value.split(",")]
    rejected = REJECTED in words  # done clips rejected in review: done jobs, narrowed below
    if rejected and any(w and w not in (REJECTED, "done") for w in words):
        raise UsageError("--only rejected lists rejected clips alone; give it without other states")
    wanted = [JobState.DONE] if rejected else parse_states(states)
    with jobs(manifest, state_dir, states=wanted, limit=None if rejected else limit, need_ledger=True) as found, \
            reader_may_leave():
        records = found.records
        if rejected:
            records = itertools.islice((job for job in records if job.review == REJECTED), limit)
        if as_json:
            for job in records:
                click.echo(json_line(job_row(job, found.store)))
            return
        shown = 0
        for line in ls_lines(records):
            click.echo(line)
            shown += 1
    if not shown:
        which = " rejected" if rejected else "" if wanted is None else " " + "/".join(str(s) for s in wanted)
        say(f"(no{which} jobs in {found.manifest})")


def _state_or_states(words: tuple[str, ...], state_dir: Path | None,
                     states: tuple[str, ...]) -> tuple[Path | None, tuple[str, ...]]:
    """``ls --state`` is the state directory; before --only it filtered by job state, and scripts still say
    ``--state failed``: a word that names job states (and no folder here) is read as --only, with a note."""
    folders: list[str] = []
    for word in words:
        if not Path(word).is_dir() and _names_states(word):
            states = (*states, word)
            say(f"note: read `--state {word}` as `--only {word}`: --state names the state directory, as in every"
                " command", "notice")
        else:
            folders.append(word)
    if len(folders) > 1:
        raise UsageError(f"--state is the state directory: give one, not {', '.join(folders)}"
                         " (job states are --only)")
    return (Path(folders[0]) if folders else state_dir), states


def _names_states(word: str) -> bool:
    try:
        return parse_states((word,)) is not None
    except UsageError:
        return False
