"""Whether the submit lane may send a job now, and its wire body (:class:`Admission`).

Two things are checked before a job's write-ahead, so that nothing is paid for what cannot be used:

* its local inputs are still as planned (:class:`~runner.endpoints.media.InputChanged`: the job fails unsent);
* its video can be stored where its manifest puts it (:class:`Destinations`).

A video that cannot be stored used to be found by its download, after its task was paid: a state directory
whose ``outputs`` folder is a link to another disk (refused: nothing is written outside the state directory), a
file where a folder should be, a folder the runner may not write in, a read-only disk. So each folder is probed
(:meth:`OutputStore.probe`: its folders made and checked, a temporary file created and removed) once a run,
both ways: a folder that takes a file is not probed again, nor is one that did not (its jobs are not sent this
run: a link planted at ``outputs`` costs one probe and one log line, not one per job). A name's own problem
(too long) is that job's alone.

A job not sent stays pending, nothing written for it; the run ends with a :class:`~runner.errors.DiskError`
(exit 6) naming the first problem, once it has collected what was paid. A disk that is full or read-only
stops the submits at once: no other folder can take a video either. The download still checks every name
again (a link planted after this check is still refused).
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from runner import endpoints
from runner.endpoints.media import InputChanged, InputResolver
from runner.engine import events as ev
from runner.engine.state import RunState, StopReason
from runner.errors import DiskError
from runner.layout import output_path
from runner.ledger import JobRecord, LedgerBackend
from runner.storage import WHOLE_DISK_ERRNOS, OutputStore, UnsafeDestination

__all__ = ["Admission", "Destinations"]

log = logging.getLogger("runner.engine")

_REMEMBERED = 4096  # folders remembered either way (a template with a folder per job): forgotten past this


class Admission:
    """The wire body of a job the lane may send now, or None (see the module docstring)."""

    def __init__(self, ledger: LedgerBackend, inputs: InputResolver | None, destinations: Destinations | None,
                 reporter: ev.Reporter) -> None:
        self.ledger = ledger
        self.inputs = inputs
        self.destinations = destinations  # None: not checked (`collect` alone, a test's store)
        self.reporter = reporter

    def body(self, job: JobRecord) -> dict[str, Any] | None:
        """The wire body, built now and never stored; None when a local input changed (the job fails unsent) or
        its video could not be stored (not sent this run)."""
        try:
            body = endpoints.get(job.model).wire_body(job.request, self.inputs)
        except InputChanged as exc:
            self._reject_input(job, exc)
            return None
        return body if self.destinations is None or self.destinations.admit(job) else None

    def finish(self) -> None:
        """The submits are over."""
        if self.destinations is not None:
            self.destinations.finish()

    def _reject_input(self, job: JobRecord, exc: InputChanged) -> None:
        """A local input is not as planned: fail the job unsent (no write-ahead, no POST, nothing paid)."""
        reason = str(exc)
        if not self.ledger.fail_unsent(job.key, reason=reason):
            return
        log.error("job %s failed before it was sent: %s", job.key, reason)
        self.reporter.emit(ev.InputRejected(key=job.key, reason=reason))


class Destinations:
    """The folders of one run's jobs, probed once each (see the module docstring)."""

    def __init__(self, store: OutputStore, ledger: LedgerBackend, manifest: str, state: RunState,
                 reporter: ev.Reporter) -> None:
        self.store = store
        self.ledger = ledger
        self.manifest = manifest
        self.state = state
        self.reporter = reporter
        self._takes: set[str] = set()  # folders that took a file this run
        self._refuses: dict[str, str] = {}  # folders that did not: why
        self.unsent = 0  # jobs not sent: their videos could not be stored
        self.first: str | None = None  # the first of those problems, as said
        self.whole_disk = False  # the disk itself is full or read-only: nothing more can be stored

    def admit(self, job: JobRecord) -> bool:
        """Whether ``job`` may be sent: its video can be stored. A disk full or read-only stops the submits."""
        if self.problem(job) is None:
            return True
        if self.whole_disk and self.state.stop(StopReason.UNSTORABLE, submitting_only=True):
            self.reporter.emit(ev.Stopping(reason=str(StopReason.UNSTORABLE)))
        return False

    def finish(self) -> None:
        """The submits are over: the run ends with :meth:`error` once it has collected (when jobs were not sent)."""
        error = self.error()
        if error is not None:
            self.state.end_with(error)

    def problem(self, job: JobRecord) -> str | None:
        """Why ``job``'s video could not be stored where its manifest puts it, or None when it can."""
        output = job.output if job.output is not None else self.ledger.target_output(self.manifest, job.key)
        if output is None:
            return None  # no longer in the manifest (an edit): kept as an orphan, checked at its download
        rel = output_path(self.manifest, output)
        folder = rel.rpartition("/")[0]
        if folder in self._takes:
            return None
        why = self._refuses.get(folder)
        if why is None:
            try:
                self.store.probe(rel)
            except (OSError, UnsafeDestination) as exc:
                why = self._said(rel, exc)
                if not (isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG):  # a name's own: not its folder's
                    if len(self._refuses) >= _REMEMBERED:
                        self._refuses.clear()
                    self._refuses[folder] = why
                log.error("job %s was not sent: its video could not be stored at %s", job.key, why)
            else:
                if len(self._takes) >= _REMEMBERED:
                    self._takes.clear()
                self._takes.add(folder)
                return None
        self.unsent += 1
        if self.first is None:
            self.first = why
        return why

    def error(self) -> DiskError | None:
        """What the run ends with when jobs were not sent (None: every job's video could be stored)."""
        if not self.unsent:
            return None
        return DiskError(f"{self.unsent} job(s) were not sent, as their videos could not be stored (the first at"
                         f" {self.first}). Nothing was paid for them; they stay pending and the next run sends them")

    def _said(self, rel: str, exc: OSError | UnsafeDestination) -> str:
        if not isinstance(exc, OSError):
            return f"{rel}: {exc}"
        where = exc.filename or self.store.describe(rel)
        if exc.errno in WHOLE_DISK_ERRNOS:
            self.whole_disk = True
            fix = "free space (or make the disk writable) and run again"
        else:
            fix = "fix the folder (its permissions, a file in its way) or the manifest's output, and run again"
        return f"{rel}: cannot write {where}: {exc.strerror or exc}; {fix}"
