"""What a run of a manifest would do and cost, from the manifest and its ledger (read, never written)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import reduce
from itertools import islice
from operator import add, attrgetter
from pathlib import Path
from typing import Any

from runner import endpoints
from runner.config import RunSettings, resolve_settings
from runner.jobs import JobSpec, JobState
from runner.layout import manifest_folder
from runner.ledger import DB_NAME, LedgerBackend, is_foreign
from runner.ledger.records import JobRecord
from runner.ledger.twins import earlier_twins
from runner.manifest import Manifest, expand, load_manifest
from runner.pricing import Price
from runner.reporting.eta import Deadline, Forecast, forecast, forecast_dict
from runner.service.left_behind import paid_keys, still_listed_elsewhere
from runner.service.limits_bind import binding_limit
from runner.service.manifest_files import refuse_case_twin
from runner.service.outcome import Notice, Notify
from runner.service.reboot_warning import warn_emptied_at_boot
from runner.service.state import (
    jobs_elsewhere,
    ledger_missing_warning,
    ledger_url,
    open_ledger_at,
    resolve_state,
    simulated,
)
from runner.storage.inside import obstacle
from runner.storage.local import LocalStore
from runner.storage.room import DISK_RESERVE, by_size, seconds_asked, video_bytes

__all__ = ["FORECAST_SETTINGS", "LOOKUP_BATCH", "Plan", "plan", "plan_forecast"]

FORECAST_SETTINGS = ("concurrency", "rpm", "max_runtime")  # the settings the forecast of wall time reads

LOOKUP_BATCH = 500


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run would do: the manifest's jobs by state, the estimated cost to submit and in all, the
    estimated spend so far (and on jobs an edit dropped), renames of stored videos, the ledger's path."""

    manifest: Path
    name: str
    model: str
    jobs: int
    counts: dict[str, int]
    cost_new: float
    cost_all: float
    budget_usd: float | None
    spent: float
    spent_dropped: float
    renames: int
    renames_blocked: list[str]
    ledger: str  # where the ledger is: the SQLite file, or the PostgreSQL URL without its password
    per_model: dict[str, int] = field(default_factory=dict)  # jobs per model
    prices: dict[str, Price | None] = field(default_factory=dict)  # per model; None: no known price
    unpriced: dict[str, int] = field(default_factory=dict)  # jobs to submit whose model has no known price
    at_most: dict[str, tuple[int, str]] = field(default_factory=dict)  # jobs to submit estimated at their most; why
    forecast: Forecast | None = None  # wall time with the run settings said (None: --list)
    binding: dict[str, Any] = field(default_factory=dict)  # the limit that binds throughput (limits_bind)
    # Paid jobs an edit not yet planned drops, by state; None: an edit of a manifest with too many paid jobs to count.
    left_behind: dict[JobState, int] | None = field(default_factory=dict)

    @property
    def to_submit(self) -> int:
        return self.counts.get(str(JobState.PENDING), 0)

    def as_dict(self) -> dict[str, Any]:
        """The summary ``runner plan --json`` prints."""
        return {
            "manifest": str(self.manifest),
            "name": self.name,
            "model": self.model,
            "jobs": self.jobs,
            "counts": self.counts,
            "to_submit": self.to_submit,
            "estimated_usd_to_submit": round(self.cost_new, 4),
            "estimated_usd_total": round(self.cost_all, 4),
            "budget_usd": self.budget_usd,
            "estimated_usd_spent": round(self.spent, 4),
            "estimated_usd_spent_on_dropped_jobs": round(self.spent_dropped, 4),
            "renames": self.renames,
            "paid_jobs_left_behind": None if self.left_behind is None else
            {str(state): n for state, n in self.left_behind.items()},
            "renames_blocked": self.renames_blocked,
            "estimate_note": "estimates from a price table (USD per output second), not the provider's bill",
            "models": {model: {"jobs": n, "price_per_second": _price_json(self.prices.get(model))}
                       for model, n in sorted(self.per_model.items())},
            "no_known_price": sorted(m for m in self.per_model if self.prices.get(m) is None),  # count 0 in estimates
            "unpriced_to_submit": dict(sorted(self.unpriced.items())),
            "estimated_at_most_to_submit": {model: {"jobs": n, "why": why} for model, (n, why) in sorted(self.at_most.items())},
            "ledger": str(self.ledger),
            "forecast": None if self.forecast is None else forecast_dict(self.forecast),
            "binding_limit": self.binding,
        }


def _price_json(price: Price | None) -> dict[str, float] | None:
    return None if price is None else {"silent": price.per_second, "sound": price.per_second_sound}


_ESTIMATE = attrgetter("estimated_usd")
_MODEL = attrgetter("model")


def _batches(jobs: Iterator[JobSpec], size: int) -> Iterator[list[JobSpec]]:
    while batch := list(islice(jobs, size)):
        yield batch


def _warn_elsewhere(where: Path, spec: Manifest, manifest_path: Path, notify: Notify) -> None:
    """The jobs are in another ledger (a mistaken ``--state``): the run is refused (check_ledger_elsewhere) — a
    ``--simulate`` one only, when that ledger is a simulated run's (it paid for nothing)."""
    there = jobs_elsewhere(where, spec, manifest_path)
    if there is None:
        return
    if simulated(there):
        notify(Notice(f"warning: the jobs of {spec.name!r} were run with --simulate in the ledger at {there.absolute()},"
                      f" not in {where}: nothing was paid there, so a real run with this state directory pays for every"
                      " job, as this plan prices them; a --simulate run with it is refused", "warning"))
        return
    notify(Notice(f"warning: the jobs of {spec.name!r} are in the ledger at {there.absolute()}, not in {where}: this"
                  " plan takes every job as new, and `runner run` with this state directory is refused. Pass"
                  f" --state {there.absolute()}", "warning"))


def plan(manifest_path: Path, state_dir: Path | None = None, *, each_job: Callable[[dict[str, Any]], None] | None = None,
         notify: Notify | None = None, limits: Mapping[str, Any] | None = None, deadline: Deadline | None = None) -> Plan:
    """Expand and check ``manifest_path`` without touching the network: what a run would submit and cost.

    Reads the ledger (never writes it) to tell jobs already done, running or in doubt. With ``each_job``,
    it is called with one row per job (key, state, request, vars, repeat, output) as the jobs are read,
    and the summary leaves out ``renames_blocked`` (a look at the disk per renamed file). ``flags`` (setting
    name → value, as ``run`` takes them) and the environment join the manifest's limits to name the one that binds.
    With ``deadline``, the forecast also says whether the run finishes before it.
    """
    spec = load_manifest(manifest_path)
    counts: Counter[str] = Counter()
    per_model: Counter[str] = Counter()
    unpriced: Counter[str] = Counter()
    no_price = set(spec.unpriced_models())
    at_most: Counter[str] = Counter()
    guessing = {model: spec_of for model in spec.models
                if (spec_of := endpoints.get(model)).at_most_why is not None}  # e.g. motion control by a URL
    total = 0
    cost_new = 0.0
    cost_all = 0.0
    folder = manifest_folder(spec.name)
    renames: dict[str, str] = {}  # stored file → the name the manifest gives it now
    # The run settings the forecast and the binding limit assume (flag > environment > manifest > default).
    settings = resolve_settings(flags={name: (limits or {}).get(name) for name in FORECAST_SETTINGS},
                                environ=os.environ, manifest=spec.settings_said())
    where = resolve_state(state_dir, manifest_path)
    warning = ledger_missing_warning(where)
    if warning is not None and notify is not None:
        notify(Notice(warning, "warning"))
    if notify is not None:
        warn_emptied_at_boot(where, notify, ledger_in_database=ledger_url() is not None)
    blocked = obstacle(where, folder.rstrip("/"))
    if blocked is not None and notify is not None:  # a run would find it before paying, and send none of the jobs
        notify(Notice(f"warning: a run would send none of these jobs (nothing is paid for a video that cannot be"
                      f" stored): {blocked}. Fix that first, or pass --state (a state directory on the other disk)",
                      "warning"))
    pending = JobState.PENDING
    by_state: dict[JobState, int] = {}
    mostly_done = False  # the last batch looked up: most of its jobs were done
    with open_ledger_at(where, readonly=True) as ledger:
        refuse_case_twin(ledger, spec, where)  # as a run would: before its forecast is read as a go-ahead
        known = ledger.total() > 0  # a new ledger has no job to look up
        # A job the ledger does not know by today's key may be one this manifest's jobs planned under an older key
        # derivation stand for (runner/ledger/twins.py): a run keeps the earlier job and pays nothing, so the plan
        # reads its state. Looked for only when the manifest has jobs here and such a job turns up (then once).
        twin_of = _TwinLookup(ledger, spec) if known and ledger.total(spec.name) > 0 else None
        # An edit not yet planned: the paid jobs it lists now, each crossed off as today's jobs find it (left_behind;
        # None when there are too many to read: then not counted, and said so).
        edited = twin_of is not None and ledger.manifest_digest(spec.name) not in (None, spec.digest)
        paid = paid_keys(ledger, spec.name) if edited else None
        for batch in _batches(expand(spec), LOOKUP_BATCH):
            if not known and each_job is None:
                # Every job new: the sums and counts of the batch in C (``reduce`` adds in order, as the loop does).
                by_state[pending] = by_state.get(pending, 0) + len(batch)
                cost_all = reduce(add, map(_ESTIMATE, batch), cost_all)
                cost_new = reduce(add, map(_ESTIMATE, batch), cost_new)
                per_model.update(map(_MODEL, batch))
                if no_price:
                    unpriced.update(model for model in map(_MODEL, batch) if model in no_price)
                if guessing:
                    at_most.update(job.model for job in batch
                                   if job.model in guessing and guessing[job.model].estimated_at_most(job.request))
                total += len(batch)
                continue
            states, stored, mostly_done = _looked_up(ledger, [job.key for job in batch], mostly_done) if known \
                else ({}, {}, False)
            for job in batch:  # a million times for a million jobs: kept lean
                state = states.get(job.key, pending) if states else pending
                key, path = job.key, None
                if twin_of is not None and state is pending and key not in states and \
                        (earlier := twin_of(job)) is not None:  # the job a run keeps in its place
                    state, key = earlier.state, earlier.key
                    path = earlier.path if state is JobState.DONE else None
                elif stored:
                    path = stored.get(key)
                if path is not None and path.startswith(folder) and path != folder + job.output:
                    renames[path] = folder + job.output
                by_state[state] = by_state.get(state, 0) + 1
                if paid:
                    paid.pop(key, None)
                cost_all += job.estimated_usd
                per_model[job.model] += 1
                if state is pending:
                    cost_new += job.estimated_usd
                    if job.model in no_price:
                        unpriced[job.model] += 1
                    if job.model in guessing and guessing[job.model].estimated_at_most(job.request):
                        at_most[job.model] += 1
                if each_job is not None:
                    each_job({"key": key, "state": str(state), "request": job.request, "vars": job.vars,
                              "repeat": job.repeat, "output": job.output})
            total += len(batch)
        counts.update({str(state): n for state, n in by_state.items()})
        if notify is not None and set(by_state) <= {pending}:  # nothing known here: a mistaken --state?
            _warn_elsewhere(where, spec, manifest_path, notify)
        if notify is not None and by_state.get(pending):
            room = _room_warning(spec, where, folder, by_state[pending])
            if room is not None:
                notify(Notice(room, "warning"))
        if paid:
            for key in still_listed_elsewhere(ledger, spec.name, list(paid)):
                del paid[key]
        left_behind: dict[JobState, int] | None = None if edited and paid is None else \
            dict(Counter(paid.values())) if paid else {}
        spent = ledger.spent_usd(spec.name)
        spent_dropped = ledger.dropped_spent_usd(spec.name)
        location = ledger.location if ledger_url() is not None else str((where / DB_NAME).absolute())
        in_the_way = [] if each_job is not None else sorted(
            dest for dest in renames.values() if dest not in renames and is_foreign(ledger, dest))
        eta = None if each_job is not None else plan_forecast(ledger, counts, settings, deadline)
    return Plan(manifest=manifest_path, name=spec.name, model=spec.model, jobs=total,
                counts={str(s): counts.get(str(s), 0) for s in JobState}, cost_new=cost_new, cost_all=cost_all,
                budget_usd=settings.budget_usd, spent=spent, spent_dropped=spent_dropped, renames=len(renames),
                renames_blocked=in_the_way, ledger=location, per_model=dict(per_model),
                prices={model: spec.price_for(model) for model in per_model}, unpriced=dict(unpriced), forecast=eta,
                at_most={model: (n, str(guessing[model].at_most_why)) for model, n in at_most.items()},
                left_behind=left_behind,
                binding=binding_limit(settings, **({} if eta is None else {"task_seconds": eta.task_seconds})))


class _TwinLookup:
    """The earlier job (:func:`~runner.ledger.twins.earlier_twins`) a job unknown by today's key stands for, or None;
    the manifest's jobs are read once, at the first job that could be a twin (text not ASCII, a salt not ASCII, a
    model with media inputs): a plan that meets none reads nothing more."""

    def __init__(self, ledger: LedgerBackend, spec: Manifest) -> None:
        self._ledger, self._name, self._salt = ledger, spec.name, spec.salt
        self._every = spec.salt is not None and not spec.salt.isascii()
        self._media = {model for model in spec.models if endpoints.get(model).media_fields}
        self._twins: dict[str, JobRecord] | None = None

    def __call__(self, job: JobSpec) -> JobRecord | None:
        if not (self._every or job.model in self._media or not json.dumps(job.request, ensure_ascii=False).isascii()):
            return None
        if self._twins is None:
            self._twins = earlier_twins(self._ledger.iter_jobs(self._name), self._salt)
        return self._twins.get(job.key)


def _room_warning(spec: Manifest, where: Path, folder: str, pending: int) -> str | None:
    """A warning when the disk of the outputs has less room than the pending jobs' videos may take (each guessed like
    the manifest's first job; a run stops sending when the room runs out), or the state directory's disk, when apart,
    less than the ledger's reserve; else None."""
    first = next(expand(spec), None)
    store = LocalStore(where)
    rel = f"{folder}{first.output}" if first is not None else ""
    room = store.room(rel, DB_NAME) if first is not None else None
    if first is None or room is None:
        return None
    free, ledger_free = room
    reserve = DISK_RESERVE if ledger_free is None else 0
    if ledger_free is not None and ledger_free < DISK_RESERVE:
        return (f"warning: the disk that holds {where} (the ledger) has {by_size(ledger_free)} free, and a run keeps"
                f" {by_size(DISK_RESERVE)} free there for the ledger's writes: it would send nothing (exit 6); free space")
    need = reserve + pending * video_bytes(first.model, first.request)
    if free >= need:
        return None
    more = f" and {by_size(reserve)} more" if reserve else ""
    return (f"warning: the disk that holds {where if reserve else (where / rel).parent} has"
            f" {by_size(free)} free, and the {pending} video(s) left to make"
            f" may take about {by_size(need - reserve)} (a guess from the {seconds_asked(first.request)} s"
            f" asked for); a run sends jobs while there is room for their videos{more},"
            " then stops (exit 6). Free space, or pass --state (a state directory on a bigger disk)")


def _looked_up(ledger: LedgerBackend, keys: list[str], mostly_done: bool
               ) -> tuple[dict[str, JobState], dict[str, str], bool]:
    """The state of each of ``keys`` the ledger knows, the stored path of those done, and whether most are done.

    Each is a look-up per key: the usual order asks the states, then the paths of the done jobs. When the last
    batch was mostly done (a manifest run to the end, planned again), the next one asks the paths first: a done
    job's path says its state too, so only the others' states are asked, one look-up per job instead of two.
    """
    if mostly_done:
        stored = ledger.stored_paths(keys)
        rest = [key for key in keys if key not in stored] if stored else keys
        states = ledger.states_of(rest) if rest else {}
        states.update(dict.fromkeys(stored, JobState.DONE))
    else:
        states = ledger.states_of(keys)
        done = [key for key, state in states.items() if state is JobState.DONE]
        stored = ledger.stored_paths(done) if done else {}
    return states, stored, sum(state is JobState.DONE for state in states.values()) * 2 > len(keys)


def plan_forecast(ledger: LedgerBackend, counts: Mapping[str, int], settings: RunSettings,
                  deadline: Deadline | None = None) -> Forecast:
    """The forecast of running the pending jobs (``counts`` by state name) with ``settings`` (and a deadline)."""
    outstanding = counts.get(str(JobState.SUBMITTING), 0) + counts.get(str(JobState.RUNNING), 0)
    rates = binding_limit(settings)["jobs_per_minute_by_limit"]  # the throughput line's: the forecast paces by them too
    paces = {name: rates[name] for name in ("downloads", "poll_rpm") if rates[name] is not None}
    return forecast(ledger, jobs=counts.get(str(JobState.PENDING), 0), outstanding=outstanding,
                    concurrency=settings.concurrency, rpm=settings.rpm, max_runtime=settings.max_runtime,
                    deadline=deadline, paces=paces)
