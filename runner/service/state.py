"""Where a manifest's ledger is: the state directory, found as every command finds it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from runner.errors import UsageError

if TYPE_CHECKING:
    from runner.ledger.api import LedgerBackend
    from runner.manifest import Manifest

__all__ = ["STATE_DIR_NAME", "check_ledger_elsewhere", "find_state_dir", "jobs_elsewhere", "jobs_nearby",
           "ledger_knows", "ledger_missing_warning", "ledger_url", "open_existing_ledger", "open_ledger_at", "refuse_inside_state",
           "refuse_jobs_nearby", "refuse_no_jobs", "refuse_source_file",
           "resolve_state", "simulated",
           "use_ledger_url"]

STATE_DIR_NAME = "state"
_CHOSEN: ContextVar[str | None] = ContextVar("runner_ledger_url", default=None)


def use_ledger_url(url: str | None) -> None:
    """The ledger URL this command was given (``--ledger``; the CLI sets it for each command)."""
    _CHOSEN.set(url or None)


def ledger_url(explicit: str | None = None) -> str | None:
    """The PostgreSQL ledger to use: ``explicit``, else ``--ledger``, else ``RUNNER_LEDGER_URL``; None: SQLite."""
    from runner.ledger.factory import LEDGER_URL_ENV

    return explicit or _CHOSEN.get() or os.environ.get(LEDGER_URL_ENV) or None


def open_ledger_at(state: Path, *, url: str | None = None, readonly: bool = False, new_ledger: bool = False,
                   create: bool = True) -> LedgerBackend:
    """The ledger a command uses (see :func:`ledger_url`): PostgreSQL at its URL, else SQLite in ``state``."""
    from runner.ledger.factory import open_backend

    return open_backend(state, url=ledger_url(url), readonly=readonly, new_ledger=new_ledger, create=create)


def open_existing_ledger(state: Path, *, readonly: bool = False, spec: Manifest | None = None,
                         manifest: Path | None = None) -> LedgerBackend:
    """The ledger a command that reads or changes recorded jobs uses (``--ledger``, else SQLite in ``state``); a
    UsageError naming where it looked when there is none — and, given the manifest (``spec``, its file
    ``manifest``), the ledger that holds its jobs when another does (a mistaken ``--state``). A read-only SQLite
    ledger that does not exist reads as empty: ``verify --check-only`` would say "0 checked" and exit 0 on a folder
    that holds no batch."""
    from runner.ledger.factory import ledger_exists

    url = ledger_url()
    if not ledger_exists(state, url):
        from runner.ledger import DB_NAME

        if spec is not None:
            refuse_jobs_nearby(state, spec, manifest, done="nothing was read or written")
        where = "in the database of --ledger" if url else f"at {state / DB_NAME}"
        raise UsageError(f"there is no ledger {where}: nothing has run there; give the --state DIR or --ledger URL"
                         " the batch ran with")
    ledger = open_ledger_at(state, readonly=readonly, create=False)
    if not readonly:  # a decision or an adopted task recorded in a ledger that went on elsewhere: seen by no run
        from runner.service.opening import refuse_moved

        refuse_moved(ledger, "nothing was read or written")
    if spec is not None and ledger.manifest_digest(spec.name) is None and not ledger.total(spec.name):
        # Another batch's ledger: `verify` said "0 checked, 0 missing" (exit 0), `review` served an empty page.
        known = ledger_knows(ledger, spec)
        ledger.close()
        where = ledger.location if url else str(state.absolute())
        if known:  # its own ledger, the manifest's `name:` edited since it ran (a note: known by its jobs only)
            raise UsageError(f"the ledger at {where} holds no job under the name {spec.name}, but it holds the"
                             " manifest's jobs under another manifest's name (was its `name:` edited?): run the"
                             " manifest once to plan it under this name (nothing is paid again for a job recorded"
                             " there), then run this command again (nothing was read or written)")
        refuse_no_jobs(where, state, spec, manifest, done="nothing was read or written")
    return ledger


def refuse_jobs_nearby(state: Path, spec: Manifest, manifest: Path | None, *, done: str) -> None:
    """With no SQLite ledger at ``state``: a UsageError naming the ledger nearby that holds ``spec``'s jobs, when one
    does (a mistaken ``--state``; ``done`` says what the command left undone)."""
    from runner.ledger import DB_NAME

    there = jobs_nearby(state, spec, manifest)
    if there is not None:
        raise UsageError(f"there is no ledger at {state / DB_NAME}, but the jobs of {spec.name!r} are in the ledger"
                         f" at {there.absolute()}: pass --state {there.absolute()} ({done})")


def refuse_no_jobs(where: str, state: Path, spec: Manifest, manifest: Path | None, *, done: str) -> NoReturn:
    """The UsageError of the ledger at ``where`` (``state``'s, or ``--ledger``'s) that holds no job of ``spec``: it
    names the ledger nearby that does, when one does (``done`` says what the command left undone)."""
    there = jobs_nearby(state, spec, manifest)
    if there is not None:
        raise UsageError(f"the ledger at {where} holds no job of {spec.name}, but the ledger at {there.absolute()}"
                         f" does: pass --state {there.absolute()} ({done})")
    raise UsageError(f"the ledger at {where} holds no job of {spec.name}: check --state (or the manifest's `name:`,"
                     f" which names its jobs in the ledger), or run the manifest first ({done})")


def refuse_inside_state(dest: Path, state: Path) -> None:
    """A UsageError when an export or report's ``--to`` is in the state directory ``state`` (its real path): the
    ledger and the stored videos live there, and an export replaces and removes files in its folder — an hf export
    into ``outputs/<manifest>`` removed a paid video when its clip was rejected, a csv ``--to state/ledger.db``
    would empty the ledger."""
    home = Path(os.path.realpath(state))
    where = Path(os.path.realpath(dest))
    if where == home or home in where.parents:
        raise UsageError(f"--to {dest} is in the state directory {state}, which holds the ledger and the stored"
                         " videos; an export there could replace or remove them: write it outside (nothing was"
                         " written)")


def refuse_source_file(dest: Path, sources: Iterable[str]) -> None:
    """A UsageError when an export's ``--to`` is the manifest or a file its matrix reads (``sources``): the export
    would replace the batch's own prompts (``--to data/prompts.csv``), and the next run read the export as its rows."""
    for source in sources:
        try:
            same = os.path.samefile(dest, source)
        except OSError:  # one of them not there: not the same file
            continue
        if same:
            which = "" if os.path.normpath(dest) == os.path.normpath(source) else f"{source}, "
            raise UsageError(f"--to {dest} is {which}a file the manifest reads: the export would replace it;"
                             " write it under another name (nothing was written)")


def resolve_state(state_dir: Path | None, manifest: Path | None = None) -> Path:
    """The state directory: ``--state`` (or RUNNER_STATE_DIR), else found from the manifest.

    Without either, a command that names a manifest uses :func:`find_state_dir`,
    so that one manifest finds its ledger from whatever directory it is run;
    a command without one (``collect`` alone, ``show``) uses ``./state``.
    Nothing is created here.
    """
    if state_dir is not None:
        return state_dir
    if manifest is None:
        return Path(STATE_DIR_NAME)
    return find_state_dir(manifest)


def find_state_dir(manifest: Path) -> Path:
    """The first ``state/`` folder in the manifest's (real) folder or one above it; else ``state/`` beside it."""
    folder = Path(os.path.realpath(manifest)).parent
    for candidate in (folder, *folder.parents):
        if (candidate / STATE_DIR_NAME).is_dir():
            return candidate / STATE_DIR_NAME
    return folder / STATE_DIR_NAME


def check_ledger_elsewhere(state_dir: Path, spec: Manifest, manifest: Path | None = None, *,
                           explicit: bool = False, simulate: bool = False) -> None:
    """Refuse a new ledger for a manifest whose jobs are in another ledger runner would have used: ``./state``
    (where it looked before it followed the manifest's folder), or a ``state/`` folder in or above the manifest's
    that an emptier ``state/`` nearer the manifest (``state_dir``, made by hand or by a script) now hides — or
    that ``state_dir``, when given (``explicit``: ``--state``, ``RUNNER_STATE_DIR``: a relative one taken from another
    working directory) would leave behind. Running on would pay for that batch again. A ledger knows the manifest
    by its name, or by its jobs (:data:`_KEYS_ASKED` of them): a copy of the manifest under another ``name:``
    asks for the same videos, paid for there already. Only a ledger of the same kind of provider counts: one made
    with ``--simulate`` paid for nothing a real run would pay again, and a simulated run (``simulate``) pays for
    nothing, whatever a real ledger records; two ledgers of one kind are one batch twice."""
    from runner.ledger import DB_NAME

    foreign = (state_dir / DB_NAME).exists()
    if foreign and _knows(state_dir, spec, simulate=None) is not None:
        return  # its own ledger (an edit, a resume): the provider it records is checked as it opens
    found = _elsewhere_ledger(state_dir, spec, manifest, simulate=simulate, sent_only=not simulate)
    if found is not None:
        other, how = found
        raise UsageError(_elsewhere(spec.name, other, state_dir, former=other == Path(STATE_DIR_NAME),
                                    explicit=explicit, foreign=foreign) + how)


def jobs_elsewhere(state_dir: Path, spec: Manifest, manifest: Path | None) -> Path | None:
    """The state directory whose ledger records ``spec``'s jobs when ``state_dir``'s records none of them (or it has
    none) — one :func:`check_ledger_elsewhere` would name, whatever its kind of provider (simulated or real): where
    ``plan``, ``status`` or an export given a mistaken ``--state`` tell the operator to look; None: nowhere."""
    from runner.ledger import DB_NAME

    if ledger_url() is not None:
        return None
    if (state_dir / DB_NAME).exists() and _knows(state_dir, spec, simulate=None) is not None:
        return None
    found = _elsewhere_ledger(state_dir, spec, manifest, simulate=None)
    return None if found is None else found[0]


def jobs_nearby(state_dir: Path, spec: Manifest, manifest: Path | None) -> Path | None:
    """Where to tell an operator to look when ``state_dir``'s ledger records none of ``spec``'s jobs: the ledger
    :func:`jobs_elsewhere` finds, else one in a folder just inside ``state_dir``, ``./state`` or the manifest's
    ``state/`` (``make demo`` keeps the demo's in ``state/demo``, and a batch of its own is often given
    ``--state state/NAME``: `runner status manifests/demo.yaml` said "no ledger in state" and no more). A hint only:
    the second-ledger guard does not look there."""
    from runner.ledger import DB_NAME

    found = jobs_elsewhere(state_dir, spec, manifest)
    if found is not None or ledger_url() is not None:
        return found
    if (state_dir / DB_NAME).exists() and _knows(state_dir, spec, simulate=None) is not None:
        return None
    roots = [state_dir, Path(STATE_DIR_NAME)] + ([] if manifest is None else [find_state_dir(manifest)])
    seen = {os.path.realpath(state_dir)}
    for root in dict.fromkeys(os.path.realpath(root) for root in roots):
        try:
            folders = sorted(entry.path for entry in os.scandir(root) if entry.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for folder in folders[:_FOLDERS_LOOKED_IN]:
            if folder in seen or not os.path.exists(os.path.join(folder, DB_NAME)):
                continue
            seen.add(folder)
            if _knows(Path(folder), spec, simulate=None) is not None:
                return Path(folder)
    return None


_FOLDERS_LOOKED_IN = 64  # the folders of a state directory looked into for a ledger (its outputs/ has none)


def simulated(state: Path) -> bool:
    """Whether the ledger in ``state`` was made by runs against the built-in simulator (``--simulate``): its jobs
    were paid for nowhere, and a real run elsewhere is not refused for them (:func:`check_ledger_elsewhere`)."""
    from runner.errors import LedgerError
    from runner.ledger import open_ledger
    from runner.service.provider import PROVIDER_META, SIMULATOR

    try:
        with open_ledger(state, readonly=True) as ledger:
            return ledger.meta(PROVIDER_META) == SIMULATOR
    except LedgerError:
        return False


def _elsewhere_ledger(state_dir: Path, spec: Manifest, manifest: Path | None, *,
                      simulate: bool | None, sent_only: bool = False) -> tuple[Path, str] | None:
    """The first other ledger (``./state``, then a ``state/`` in or above the manifest's folder) that knows
    ``spec``, and how (see :func:`_knows`; ``sent_only``: not one that holds only a plan)."""
    from runner.ledger import DB_NAME

    above = [] if manifest is None else [folder / STATE_DIR_NAME for folder in Path(os.path.realpath(manifest)).parents]
    seen = {os.path.realpath(state_dir)}
    for other in (Path(STATE_DIR_NAME), *above):
        real = os.path.realpath(other)
        if real in seen or not (other / DB_NAME).exists():
            continue
        seen.add(real)
        how = _knows(other, spec, simulate=simulate, sent_only=sent_only)
        if how is not None:
            return other, how
    return None


_KEYS_ASKED = 64  # the manifest's first jobs looked up in another ledger


def _knows(state: Path, spec: Manifest, *, simulate: bool | None, sent_only: bool = False) -> str | None:
    """How the ledger in ``state`` knows the manifest (:func:`ledger_knows`); None: not, or it is of another kind of
    provider than the run's (``simulate``: the built-in simulator; else a real one; None: either kind).

    ``sent_only`` (a real run's refusal): None for a ledger that has sent nothing and that no run holds now — a plan
    only, such as the one a run refused by the book of this host's ledgers leaves where the state folder was. Named,
    it sent the operator there (`mv state big1`, the cron line refused and then fixed, `mv big1 big2`: "Pass --state
    state"), whose run was refused in turn; planning elsewhere pays nothing twice, and the book, which armed the
    ledger that did send, refuses the new one naming where that ledger was. One a run holds may be about to send
    (a large plan's transaction under way): it counts. So does one the book cannot stand behind (:func:`_booked`):
    the plan is then the batch's only trace, and a second ledger would pay for it, and the plan's run again."""
    from runner.errors import LedgerError
    from runner.ledger import lock_path, open_ledger
    from runner.ledger.holder import live_holder
    from runner.service.provider import PROVIDER_META, SIMULATOR

    try:
        with open_ledger(state, readonly=True) as old:
            made_with = old.meta(PROVIDER_META)  # None: a ledger no run has used yet (or one older than the record)
            if simulate is not None and (
                    (made_with == SIMULATOR and not simulate) or (made_with not in (None, SIMULATOR) and simulate)):
                return None
            if sent_only and not old.has_provider_tasks() and live_holder(lock_path(state)) is None \
                    and _booked(spec):
                return None
            return ledger_knows(old, spec)
    except LedgerError:
        return None


def _booked(spec: Manifest) -> bool:
    """Whether the book of this host's ledgers can be read and one of its armed ledgers (one that may have paid)
    planned some of ``spec``'s jobs: that ledger, not a plan-only one, is the one its guard names. Not when the book
    is unusable (its guard only warns), nor another user's or host's (a book of its own, which never saw it)."""
    from runner.ledger.book import BookUnusable, book_path, entries
    from runner.manifest import expand

    try:
        armed = {key for entry in entries(book_path(), None) if entry.armed_at is not None for key in entry.sample}
    except BookUnusable:
        return False
    return bool(armed) and any(job.key in armed for job in expand(spec))


def ledger_knows(ledger: LedgerBackend, spec: Manifest) -> str | None:
    """How an open ledger knows the manifest: "" by its name, a note when by its jobs only (a copy, or the manifest
    with its ``name:`` edited: one job per video asked for, whatever the name); None: it records none of them."""
    from itertools import islice

    from runner.manifest import expand
    from runner.service.manifest_files import MANIFEST_FILE_META

    # A run notes the manifest's file before it plans it: a run planning it there now (a large plan's one
    # transaction takes seconds; its jobs cannot be seen until it commits) knows it already.
    if ledger.manifest_digest(spec.name) is not None or ledger.meta(f"{MANIFEST_FILE_META}{spec.name}") is not None:
        return ""
    keys = [job.key for job in islice(expand(spec), _KEYS_ASKED)]
    known = len(ledger.states_of(keys))
    if not known:
        return None
    return (f". It records {known} of the manifest's first {len(keys)} jobs under another manifest's name: the same"
            " videos, paid for there; --new-ledger pays for them again")


def _elsewhere(manifest_name: str, other: Path, state_dir: Path, *, former: bool, explicit: bool,
               foreign: bool = False) -> str:
    if foreign:
        given = " given (--state or RUNNER_STATE_DIR)" if explicit else ""
        where = (f"the ledger at {other.absolute()}, but the ledger of the state directory{given},"
                 f" {state_dir.absolute()}, records none of them (another batch's): planned there, the batch would be"
                 " paid for again")
        return (f"the jobs of {manifest_name!r} are in {where}. Pass --state {other.absolute()} to go on with the first,"
                " or --new-ledger to plan them there all the same (nothing was sent)")
    if explicit:
        where = (f"the ledger at {other.absolute()}, but the state directory given (--state or RUNNER_STATE_DIR),"
                 f" {state_dir.absolute()}, has no ledger (a relative one is taken from the current directory): a"
                 " new ledger there would pay for the batch again")
    elif former:
        where = (f"the ledger at {other.absolute()} (the current directory's state/), but without --state runner now"
                 f" uses the state/ folder found from the manifest: {state_dir}, which has no ledger")
    else:
        where = (f"the ledger at {other}, but the state/ folder nearer the manifest, {state_dir}, has no ledger and"
                 " hides it (a new ledger there would pay for the batch again)")
    return (f"the jobs of {manifest_name!r} are in {where}. Pass --state {other} to go on with the first, or"
            " --new-ledger to start another (nothing was sent)")


def ledger_missing_warning(state: Path) -> str | None:
    """The warning when ``state`` has no ledger although it shows one was used there (a run would refuse)."""
    from runner.ledger import DB_NAME, ledger_traces

    if ledger_url() is not None:
        return None  # the ledger is a database; the state directory holds only videos

    if (state / DB_NAME).exists():
        return None
    traces = ledger_traces(state)
    if not traces:
        return None
    return (f"warning: {state / DB_NAME} is missing, but {state} shows a ledger was used there"
            f" ({', '.join(traces)}); what follows knows nothing of it. Restore it from a backup, or"
            " check --state.")
