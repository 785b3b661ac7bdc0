"""What ``runner status``, ``runner show`` and ``runner ls`` print: read from the ledger, rendered as text or JSON.

Each view is a small frozen record built by one function (``status_summary``,
``job_detail``) and rendered by two (``*_dict`` for ``--json``, ``*_lines``
for people). Times are epoch seconds; ``now`` is passed in so tests pin it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.jobs import JobState
from runner.layout import manifest_folder, orphan_folder, output_path
from runner.ledger import AttemptRecord, JobRecord, LedgerBackend, RejectionRecord, RunRecord, RunSummary
from runner.ledger.records import LeaseRecord
from runner.ledger.review_queue import queued_decisions
from runner.reporting.history import by_model_lines, run_dict
from runner.reporting.missing import MissingVideos, missing_videos
from runner.reporting.select import resolve_key
from runner.reporting.text import (
    duration,
    local_time,
    money,
    seconds,
    short,
    table,
    vars_text,
    visible,
)

__all__ = [
    "JobDetail",
    "StatusSummary",
    "detail_dict",
    "detail_lines",
    "job_detail",
    "ls_lines",
    "resolve_key",
    "status_dict",
    "status_lines",
    "status_summary",
    "timings",
]

STATUS_RUNS = 5  # the latest runs whose spend status shows


@dataclass(frozen=True, slots=True)
class StatusSummary:
    """One manifest's jobs by state, spend, and what needs watching."""

    scope: str
    total: int
    counts: dict[JobState, int]
    spent_usd: float
    pending_usd: float
    oldest_running: JobRecord | None
    running_without_time: int
    earliest_expiry: JobRecord | None
    last_run: RunRecord | None
    now: float
    dropped_spent_usd: float = 0.0  # the part of spent_usd on jobs the manifest no longer lists
    orphans: dict[JobState, int] = field(default_factory=dict)  # paid jobs no manifest lists, by state
    misplaced: int = 0  # done jobs whose file is not (yet) at the name the manifest gives it
    by_model: dict[str, float] = field(default_factory=dict)  # estimated spend by model
    runs: list[RunSummary] = field(default_factory=list)  # the latest runs, with what they did to these jobs
    runners: tuple[LeaseRecord, ...] = ()  # a shared ledger: the runners working on it (their leases)
    review: dict[str, int] = field(default_factory=dict)  # done jobs by review decision: rejected, accepted
    queued: int = 0  # review decisions made while a run held the ledger, not saved yet (the run saves them) (jobs)
    missing: MissingVideos = field(default_factory=MissingVideos)  # done jobs whose video is not at its recorded path (deleted, moved)


def _min_by(jobs: Iterable[JobRecord], attr: str) -> tuple[JobRecord | None, int]:
    best: JobRecord | None = None
    missing = 0
    for job in jobs:
        value = getattr(job, attr)
        if value is None:
            missing += 1
        elif best is None or value < getattr(best, attr):
            best = job
    return best, missing


def status_summary(ledger: LedgerBackend, manifest: str, *, now: float) -> StatusSummary:
    """Read the status of ``manifest`` (running and succeeded jobs are few: they are walked)."""
    counts = ledger.counts(manifest)
    oldest, no_time = _min_by(ledger.iter_jobs(manifest, states=[JobState.RUNNING]), "submitted_at")
    expiry, _ = _min_by(ledger.iter_jobs(manifest, states=[JobState.SUCCEEDED]), "url_expires_at")
    runs = ledger.runs(limit=1)
    return StatusSummary(
        scope=manifest,
        total=sum(counts.values()),
        counts=counts,
        spent_usd=ledger.spent_usd(manifest),
        pending_usd=ledger.estimate_usd(manifest, [JobState.PENDING]),
        oldest_running=oldest,
        running_without_time=no_time,
        earliest_expiry=expiry,
        last_run=runs[0] if runs else None,
        now=now,
        dropped_spent_usd=ledger.dropped_spent_usd(manifest),
        orphans=ledger.orphans(manifest),
        misplaced=ledger.misplaced_count(manifest, manifest_folder(manifest)),
        by_model=ledger.spend_by_model(manifest),
        runs=ledger.run_history(manifest, limit=STATUS_RUNS),
        review=ledger.review_counts(manifest),
        queued=len({(d.manifest, d.key) for d in queued_decisions(ledger.state_dir)
                    if manifest is None or d.manifest == manifest}),
        missing=missing_videos(ledger, manifest, now=now),
    )


def status_dict(s: StatusSummary) -> dict[str, Any]:
    """``--json``: ``{"total": N, "counts": {every state: n}, …}`` (the first two keys are a contract)."""
    oldest = None
    if s.oldest_running is not None and s.oldest_running.submitted_at is not None:
        oldest = {"key": s.oldest_running.key, "task_id": s.oldest_running.task_id,
                  "submitted_at": s.oldest_running.submitted_at,
                  "age_s": round(s.now - s.oldest_running.submitted_at, 3)}
    expiry = None
    if s.earliest_expiry is not None and s.earliest_expiry.url_expires_at is not None:
        expiry = {"key": s.earliest_expiry.key, "expires_at": s.earliest_expiry.url_expires_at,
                  "in_s": round(s.earliest_expiry.url_expires_at - s.now, 3)}
    last_run = None
    if s.last_run is not None:
        last_run = {"id": s.last_run.id, "started_at": s.last_run.started_at, "ended_at": s.last_run.ended_at,
                    "exit_code": s.last_run.exit_code, "argv": s.last_run.argv}
    return {
        "total": s.total,
        "counts": {str(state): s.counts.get(state, 0) for state in JobState},
        "rejected": s.review.get("rejected", 0),  # done clips rejected in review, not yet regenerated
        "accepted": s.review.get("accepted", 0),
        "queued_decisions": s.queued,  # review decisions made during a run, not saved yet (the run saves them in seconds)
        "manifest": s.scope,
        "estimated_spent_usd": round(s.spent_usd, 4),
        "estimated_pending_usd": round(s.pending_usd, 4),
        "estimated_spent_on_dropped_jobs_usd": round(s.dropped_spent_usd, 4),
        "orphans": {str(state): n for state, n in s.orphans.items()},
        "misplaced_files": s.misplaced,
        "missing_videos": {"count": s.missing.count, "paths": list(s.missing.first), "restorable": s.missing.restorable,
                           "restorable_until": s.missing.until},  # done, not at the recorded path; restorable: URL valid
        "oldest_running": oldest,
        "earliest_url_expiry": expiry,
        "last_run": last_run,
        "estimated_spent_by_model_usd": {model: round(usd, 4) for model, usd in s.by_model.items()},
        "runs": [run_dict(run, now=s.now) for run in s.runs],
        "runners": [{"host": r.host, "pid": r.pid, "since": r.started_at, "last_heartbeat": r.renewed_at,
                     "heartbeat_age_s": round(r.heartbeat_age, 3), "expires_at": r.expires_at, "live": r.live}
                    for r in s.runners],
    }


def status_lines(s: StatusSummary, *, manifest_path: str = "MANIFEST") -> list[str]:
    """The readable table of ``runner status``."""
    rows = []
    rejected = s.review.get("rejected", 0)
    for state in JobState:
        n = s.counts.get(state, 0)
        share = f"{100 * n / s.total:.0f}%" if s.total and n else ""
        extra = [f"{rejected} rejected"] * bool(rejected) + [f"{s.missing.count} not on disk"] * bool(s.missing.count)
        rows.append([str(state), n, share, ", ".join(extra) if state is JobState.DONE else ""])
    lines = [f"{s.scope}: {s.total} job(s)", ""]
    lines += ["  " + line for line in table(["state", "jobs", "share", ""], rows, right=(1, 2))]
    lines.append("")
    spent = money(s.spent_usd)
    if s.dropped_spent_usd:
        spent += f", of which {money(s.dropped_spent_usd)} on jobs no longer in the manifest"
    facts: list[list[str]] = [
        ["estimated spend so far", spent],
        ["estimated cost of pending jobs", money(s.pending_usd)],
    ]
    facts += [list(fact) for fact in by_model_lines(s.by_model, s.runs, manifest_path)]
    if s.orphans:
        states = ", ".join(f"{n} {state}" for state, n in sorted(s.orphans.items()))
        facts.append(["orphans (paid, no longer listed)",
                      f"{sum(s.orphans.values())}: {states}; a video stored before the edit stays where it is,"
                      f" one still to download goes to {orphan_folder(s.scope)}"])
    job = s.oldest_running
    if job is not None and job.submitted_at is not None:
        since = job.submitted_at
        age = (duration(s.now - since) if s.now >= since else  # a clock set back since, or another host's ahead
               f"unknown: sent at a time ahead of this machine's clock by {duration(since - s.now)}")
        facts.append(["oldest running task", f"{age} (since {local_time(since)}; job {job.key}, task {job.task_id})"])
    elif s.counts.get(JobState.RUNNING):
        facts.append(["oldest running task", "unknown"])
    else:
        facts.append(["oldest running task", "none running"])
    if s.earliest_expiry is not None and s.earliest_expiry.url_expires_at is not None:
        left = s.earliest_expiry.url_expires_at - s.now
        when = f"in {duration(left)}" if left > 0 else f"expired {duration(-left)} ago (a fresh URL is asked for)"
        facts.append(["earliest result URL expiry", f"{when}; job {s.earliest_expiry.key}"])
    elif s.counts.get(JobState.SUCCEEDED):
        facts.append(["earliest result URL expiry", "unknown (no TTL given)"])
    else:
        facts.append(["earliest result URL expiry", "no result awaiting download"])
    for r in s.runners:
        lapsed = "" if r.live else ", lease expired: its work is taken over"
        facts.append([f"runner {r.host}:{r.pid}", f"since {local_time(r.started_at)}, last heartbeat"
                      f" {duration(max(0.0, r.heartbeat_age))} ago{lapsed}"])
    if s.last_run is not None:
        run = s.last_run
        ended = "still running or killed" if run.ended_at is None else f"exit {run.exit_code}"
        facts.append(["last run", f"#{run.id} started {local_time(run.started_at)}, {ended}"])
    width = max(len(label) for label, _ in facts)
    lines += [f"  {label.ljust(width)}  {value}" for label, value in facts]
    hints = []
    if s.counts.get(JobState.IN_DOUBT):
        hints.append(f"{s.counts[JobState.IN_DOUBT]} job(s) IN DOUBT: the provider may have billed them. List them with"
                     f" `runner ls {manifest_path} --only in_doubt`; pay again with"
                     f" `runner retry {manifest_path} --in-doubt`.")
    bad = s.counts.get(JobState.FAILED, 0) + s.counts.get(JobState.LOST, 0)
    if bad:
        hints.append(f"{bad} job(s) failed or lost: `runner ls {manifest_path} --only failed,lost` says why.")
    if rejected:
        hints.append(f"{rejected} done clip(s) rejected in review (left out of exports): `runner regenerate"
                     f" {manifest_path}` queues a fresh sample of each (new paid tasks).")
    if s.queued:
        hints.append(f"{s.queued} review decision(s) queued while a run was writing the ledger: the run saves them"
                     " within seconds (one killed first: the next command that writes the ledger).")
    if s.misplaced:
        hints.append(f"{s.misplaced} stored video(s) are not at the name {s.scope} gives them (a file was in the"
                     f" way when it was edited); `runner run {manifest_path}` says which and renames them when it"
                     " safely can.")
    if (gone := s.missing).count:
        hints.append(f"{gone.count} done video(s) are not at their recorded path ({gone.named}): deleted or moved since they"
                     f" were downloaded. `runner verify {manifest_path}` downloads them again, paying nothing, "
                     + (f"while their result URLs last ({gone.restorable} until {local_time(gone.until)}, the first to"
                        " expire)." if gone.restorable else "if the provider still keeps them (their recorded URLs"
                        " have expired).") + " Moved on purpose: nothing to do.")
    if hints:
        lines.append("")
        lines += [f"note: {hint}" for hint in hints]
    return lines


# ---------------------------------------------------------------- one job

@dataclass(frozen=True, slots=True)
class JobDetail:
    """One job with every attempt, its output paths and the provider's timings."""

    job: JobRecord
    attempts: list[AttemptRecord]
    outputs: list[str]
    debug: dict[str, Any]
    now: float
    rejections: list[RejectionRecord] = field(default_factory=list)


def job_detail(ledger: LedgerBackend, ident: str, *, now: float) -> JobDetail:
    key = resolve_key(ledger, ident)
    job = ledger.get(key)
    assert job is not None
    return JobDetail(job=job, attempts=ledger.attempts(key), outputs=[output_path(m, o) for m, o in ledger.targets_of(key)],
                     debug=ledger.debug_info(key), now=now, rejections=ledger.rejections(key))


def _ms(value: Any) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):  # "inf" and 1e400 from a hostile provider
        return None
    return number if number > 0 else None


def timings(debug: dict[str, Any]) -> dict[str, Any]:
    """The provider's ``debug_info`` times (epoch ms) and the spans they give (seconds)."""
    submit, execute, complete = (_ms(debug.get(name)) for name in
                                 ("submit_time_ms", "execute_time_ms", "complete_time_ms"))

    def span(a: int | None, b: int | None) -> float | None:
        return None if a is None or b is None else round((b - a) / 1000, 3)

    return {
        "submit_time_ms": submit,
        "execute_time_ms": execute,
        "complete_time_ms": complete,
        "queue_seconds": span(submit, execute),
        "generation_seconds": span(execute, complete),
        "provider_seconds": span(submit, complete),
    }


def _attempt_dict(a: AttemptRecord) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind, "started_at": a.started_at, "ended_at": a.ended_at, "outcome": a.outcome,
            "task_id": a.task_id, "http_status": a.http_status, "detail": a.detail, "run_id": a.run_id}


def detail_dict(d: JobDetail) -> dict[str, Any]:
    job = d.job
    return {
        "key": job.key, "state": str(job.state), "model": job.model, "task_id": job.task_id,
        "request": job.request, "vars": job.vars, "repeat": job.repeat, "outputs": d.outputs,
        "path": job.path, "sha256": job.sha256, "bytes": job.bytes,
        "estimated_usd": job.estimated_usd, "spent_usd": job.spent_usd, "submits": job.attempts,
        "error": job.error, "reason": job.reason, "url_expires_at": job.url_expires_at,
        "created_at": job.created_at, "submitted_at": job.submitted_at, "finished_at": job.finished_at,
        "updated_at": job.updated_at, "provider_timings": timings(d.debug),
        "attempts": [_attempt_dict(a) for a in d.attempts], "sample": job.sample, "review": job.review,
        "rejections": [asdict(r) for r in d.rejections],
    }


def detail_lines(d: JobDetail) -> list[str]:
    """``runner show``: the job, then its attempts oldest first."""
    job = d.job
    request = dict(job.request)
    prompt = request.pop("prompt", None)
    facts: list[tuple[str, str]] = [("state", str(job.state).upper() if job.state is JobState.IN_DOUBT else str(job.state)),
                                    ("model", job.model)]
    if job.vars:
        facts.append(("vars", vars_text(job.vars)))
    facts.append(("repeat", str(job.repeat)))
    if prompt is not None:
        facts.append(("prompt", str(prompt)))
    facts.append(("request", json.dumps(request, ensure_ascii=False, sort_keys=True)))
    facts.append(("task_id", job.task_id or "-"))
    for i, out in enumerate(d.outputs):
        facts.append(("output" if i == 0 else "also at", out))
    if job.path is not None:
        facts.append(("stored", f"{job.path} ({job.bytes} bytes, sha256 {job.sha256})"))
    facts.append(("spend", (f"~{money(job.spent_usd)} over {job.attempts} submit(s); one task ~{money(job.estimated_usd)}"
                           " (estimates)")))
    if job.error:
        facts.append(("error", job.error))
    if job.review or job.sample:
        facts.append(("review", f"{job.review or 'not reviewed'}; sample {job.sample + 1}"))
    for r in d.rejections:
        kept = f", kept at {r.kept_path}" if r.kept_path else ""
        facts.append(("rejected", f"sample {r.sample + 1} on {local_time(r.rejected_at)}: {r.reason}"
                                  f" ({r.outcome or 'open'}{kept})"))
    if job.state is JobState.SUCCEEDED and job.url_expires_at is not None:
        left = job.url_expires_at - d.now
        facts.append(("result URL", f"expires in {duration(left)}" if left > 0 else f"expired {duration(-left)} ago"))
    t = timings(d.debug)
    if t["provider_seconds"] is not None or t["queue_seconds"] is not None:
        facts.append(("provider time", (f"queued {seconds(t['queue_seconds'])}, generated"
                                       f" {seconds(t['generation_seconds'])}")))
    facts.append(("planned", local_time(job.created_at)))
    if job.submitted_at is not None:
        facts.append(("submitted", local_time(job.submitted_at)))
    if job.finished_at is not None:
        facts.append(("finished", local_time(job.finished_at)))
    width = max(len(label) for label, _ in facts)
    lines = [f"job {job.key}"] + [f"  {label.ljust(width)}  {visible(value)}" for label, value in facts]
    lines += ["", f"attempts ({len(d.attempts)}):"]
    if not d.attempts:
        lines.append("  none: never submitted")
        return lines
    rows = []
    for n, a in enumerate(d.attempts, 1):
        took = "" if a.ended_at is None else seconds(a.ended_at - a.started_at)
        outcome = a.outcome or ("on the wire" if a.kind == "submit" else "")
        rows.append([n, a.kind, local_time(a.started_at), took, outcome, a.http_status or "",
                     a.task_id or "", short(visible(a.detail or ""), 60), "" if a.run_id is None else f"#{a.run_id}"])
    lines += ["  " + line for line in
              table(["#", "kind", "started", "took", "outcome", "http", "task_id", "detail", "run"], rows, right=(0, 5))]
    return lines


# ---------------------------------------------------------------- listings

def ls_lines(jobs: Iterable[JobRecord], *, width: int = 60, batch: int = 500) -> Iterator[str]:
    """``runner ls``: one aligned row per job (key, state, vars, output, task, why), streamed.

    Column widths are taken from the first ``batch`` rows; later rows keep them.
    """
    headers = ["key", "state", "vars", "output", "task_id", "error"]

    def row(job: JobRecord) -> list[str]:
        why = job.error or job.reason or ""
        state = f"{job.state} (rejected)" if job.review == "rejected" else str(job.state)
        return [job.key, state, short(vars_text(job.vars), 40), job.output or "", job.task_id or "-",
                short(visible(why), width)]

    iterator = iter(jobs)
    first = [row(job) for job in itertools.islice(iterator, batch)]
    if not first:
        return
    lines = table(headers, first)
    yield from lines
    widths = [max([len(headers[i])] + [len(r[i]) for r in first]) for i in range(len(headers))]
    for job in iterator:
        yield "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row(job))).rstrip()
