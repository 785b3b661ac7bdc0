"""Attach a task id the operator knows to an in-doubt job, verified at the provider first (`runner adopt`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.errors import TaskIdTaken, UsageError
from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.service.provider import PROVIDER_META, look_up_tasks, provider_for_ledger
from runner.service.state import open_ledger_at, resolve_state

__all__ = ["TASK_ID_MAX", "Adopted", "adopt", "kind_differs", "resolve_key"]

TASK_ID_MAX = 256
_TASK_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces or control characters


@dataclass(frozen=True, slots=True)
class Adopted:
    """Job ``key`` now runs with ``task_id``; the provider said ``status``; its ledger is in ``state``."""

    key: str
    task_id: str
    status: str
    state: Path
    provider: str | None = None  # what the ledger records (`simulator`, or a base URL): the next command needs it


def resolve_key(ledger: LedgerBackend, key: str) -> str:
    if ledger.get(key) is not None:
        return key
    keys = ledger.find_keys(key, limit=2)
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise UsageError(f"no job with key {key!r} in {ledger.location}; see `runner ls MANIFEST --only in_doubt`")
    raise UsageError(f"several jobs start with {key!r} ({', '.join(keys)}, …); give more of the key")


# Words of a model's name, in groups of which a task and its job must not name two different ones (a Std task is
# no Pro job's; an image-to-video task no text-to-video job's). The provider's task_type strings for Kling v3 are
# not documented: a word it does not use contradicts nothing.
_EXCLUSIVE = (frozenset({"std", "pro", "4k"}), frozenset({"t2v", "i2v", "motion"}))


def kind_differs(task_type: str, model: str) -> bool:
    """Whether the provider's ``task_type`` plainly names another kind of task than ``model``'s (another tier,
    another input): KLING_V3_STD_T2V is not kling-v3.0-pro-t2v."""
    said = set(re.split(r"[^a-z0-9]+", task_type.lower()))
    asked = set(re.split(r"[^a-z0-9]+", model.lower()))
    return any(said & group and asked & group and said & group != asked & group for group in _EXCLUSIVE)


def adopt(key: str, task_id: str, state_dir: Path | None = None, *, base_url: str | None = None,
          environ: Mapping[str, str] | None = None, force: bool = False) -> Adopted:
    """Attach ``task_id`` to the in-doubt job ``key`` (a full key or a unique prefix) once the provider
    confirms it knows the task (one task-result GET). Nothing is submitted or paid; anything wrong is a
    UsageError and changes nothing."""
    task_id = task_id.strip()
    if not task_id or len(task_id) > TASK_ID_MAX or not _TASK_ID.fullmatch(task_id):
        raise UsageError(f"{task_id[:80]!r} does not look like a task id (printable characters, at most"
                         f" {TASK_ID_MAX}); nothing changed")
    state = resolve_state(state_dir)
    if not (state / "ledger.db").exists():
        raise UsageError(f"no ledger in {state}; point --state at the state directory of the run")
    with open_ledger_at(state) as ledger:
        ledger.recover_expired(ledger.owner)  # we hold the lock: a job left submitting by a dead run is in doubt
        key = resolve_key(ledger, key)
        job = ledger.get(key)
        assert job is not None
        if job.state is not JobState.IN_DOUBT:
            held = f" with task {job.task_id}" if job.task_id else ""
            raise UsageError(f"job {key} is {job.state}{held}, not in doubt; `runner adopt` only attaches a task to"
                             " an in-doubt job (nothing changed)")
        owner = ledger.key_of_task(task_id)
        if owner is not None:
            raise UsageError(f"task {task_id} already belongs to job {owner}; nothing changed")
        # The job first, then the key and the provider (a done job was refused only once both were given). Its tasks
        # exist only at the provider the ledger records: asked there unless --base-url (or NOVITA_BASE_URL) says.
        recorded = ledger.meta(PROVIDER_META)
        endpoint, api_key = provider_for_ledger(ledger, base_url, environ)
        result = look_up_tasks(endpoint, api_key, [task_id])[task_id]
        if result is None:
            raise UsageError(f"the provider at {endpoint} does not know task {task_id} (TASK_NOT_FOUND); check the"
                             f" id (and --base-url); job {key} stays in doubt, nothing changed")
        status = str(result.task.status)
        if not force and kind_differs(result.task.task_type, job.model):
            raise UsageError(f"the provider says task {task_id} is a {result.task.task_type} task, and job {key} asked"
                             f" for {job.model}: most likely not its task (its video would be stored as this job's);"
                             " nothing changed. Pass --force if you are sure")
        try:
            ledger.adopt_task(key, task_id, detail=f"attached by `runner adopt`; the provider said {status}")
        except TaskIdTaken as exc:  # recorded meanwhile (the ledger checks it in the same transaction)
            raise UsageError(f"task {task_id} already belongs to job {exc.holder}; nothing changed") from None
    return Adopted(key, task_id, status, state, recorded)
