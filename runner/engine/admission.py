"""Whether the submit lane may send a job now, and its wire body (:class:`Admission`).

Two things are checked before a job's write-ahead, so that nothing is paid for what cannot be used:

* its local inputs are still as planned (:class:`~runner.endpoints.media.InputChanged`: the job fails unsent) —
  for a file sent inline, when its body's bytes are made (:meth:`Admission.encoded`, once the submit lane has room
  for them: :mod:`runner.engine.room`), still before the write-ahead;
* its video can be stored where its download will put it (:class:`Destinations`) — checked before the rate
  limiter, so a job held back costs no turn of the rate.

A video that cannot be stored used to be found by its download, after its task was paid: a state directory
whose ``outputs`` folder is a link to another disk (refused: nothing is written outside the state directory), a
file where a folder should be, a folder the runner may not write in, a read-only disk. So the folder of the
job's first target (the manifest that listed it first: where the download stores it) is probed
(:meth:`OutputStore.probe`: its folders made and checked, a temporary file created and removed), the answer
remembered: a folder that did not take one is not probed again this run (its jobs are not sent: a link planted at
``outputs`` costs one probe and one log line, not one per job); one that did is probed again once
:data:`PROBE_AGAIN_S` have passed, as an operator may change it under the run (moved to another disk and linked
back, made read-only): remembered for the whole run, such a folder had every later job paid for and none stored.
The name itself is looked at for every job (:meth:`OutputStore.check_name`: a link planted at it; a file at it
that no job in the ledger records, the job's own video when the ledger was restored from a backup older than its
submit): a name's own problem, like one too long, holds back that job alone.

The room left on the disk is looked at for every job too (:meth:`OutputStore.room`, a ``statvfs`` of the video's disk and of the ledger's): an
empty file needs no blocks, so the probe cannot see a full disk, and a run on one paid for a whole wave of
videos its downloads then could not store — and a nightly run, once more every night. A job is sent only while
the disk holds :data:`~runner.storage.room.DISK_RESERVE` (the ledger's own writes) plus room for the videos paid
for and not stored yet and for this one (:func:`~runner.storage.room.video_bytes`, a generous guess from the
seconds of video asked for). A job that would fit once the videos on their way are stored waits (``later``: the
submit lane looks again as each download ends); one that would not fit even then stops the submits, as on a
read-only disk.

A job not sent stays pending, nothing written for it; the run ends with a :class:`~runner.errors.DiskError`
(exit 6) naming the first problem, once it has collected what was paid. A read-only or full disk stops the
submits at once, and so does any problem on a shared ledger (this host's state directory is at fault: its claims
are given back at once, for runners on other hosts to send). The download checks every name again (a link
planted after this check is still refused), and a disk that fills faster than guessed stops the run there (the
video stays succeeded, downloaded by the next run).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import shlex
from collections.abc import Callable
from typing import Any, Literal

from runner import endpoints
from runner.client.body import InlineBody, inline_body
from runner.endpoints.media import InputChanged, InputResolver
from runner.engine import events as ev
from runner.engine.policy import EngineConfig
from runner.engine.state import RunState, StopReason
from runner.errors import DiskError
from runner.jobs import JobState
from runner.layout import output_path
from runner.ledger import DB_NAME, JobRecord, LedgerBackend
from runner.storage import WHOLE_DISK_ERRNOS, OutputStore, UnsafeDestination, beside_name, whole_disk_fix
from runner.storage.ownership import refused
from runner.storage.room import DISK_RESERVE, by_size, seconds_asked, video_bytes

__all__ = ["LATER", "PROBE_AGAIN_S", "ROOM_LOOK_S", "Admission", "AdoptCommands", "Destinations", "Verdict"]

log = logging.getLogger("runner.engine")

Verdict = Literal["send", "hold", "later"]
LATER = "later: room once the videos on their way are stored"  # Destinations.problem's answer for that (not sent yet)
ROOM_LOOK_S = 5.0  # a job waiting for room on the disk looks again after this (and whenever a download ends)
PROBE_AGAIN_S = 5.0  # a folder that took a file is probed again after this (engine clock): it may have changed since

_REMEMBERED = 4096  # folders remembered either way (a template with a folder per job): forgotten past this


class Admission:
    """What the submit lane may send now (see the module docstring)."""

    def __init__(self, ledger: LedgerBackend, inputs: InputResolver | None, destinations: Destinations | None,
                 reporter: ev.Reporter) -> None:
        self.ledger = ledger
        self.inputs = inputs
        self.destinations = destinations  # None: not checked (`collect` alone, a test's store)
        self.reporter = reporter

    def storable(self, job: JobRecord, ahead: int = 0) -> Verdict:
        """Whether ``job``'s video can be stored: ``send``; ``hold`` (not sent this run); ``later`` (the disk has
        room for it once the videos on their way are stored: ask again when one is). Asked before the rate
        limiter. ``ahead``: jobs admitted into the same group of submits, not yet holding a slot."""
        return "send" if self.destinations is None else self.destinations.admit(job, ahead)

    def body(self, job: JobRecord) -> dict[str, Any] | InlineBody | None:
        """The wire body, built now and never stored; None when a local input changed (the job fails unsent).

        A body carrying local files inline (the resolver's :class:`~runner.endpoints.media.Inline`) comes as an
        :class:`InlineBody`, no file read yet: its size is known, and :meth:`encoded` makes its bytes."""
        try:
            return inline_body(endpoints.get(job.model).wire_body(job.request, self.inputs))
        except InputChanged as exc:
            self._reject_input(job, exc)
            return None

    def encoded(self, job: JobRecord, body: InlineBody) -> bytes | None:
        """The bytes of ``body``, each inline file read, checked and base64-encoded straight into them
        (:mod:`runner.client.body`); None when a file is not as planned (the job fails unsent)."""
        try:
            return body.encode()
        except InputChanged as exc:
            self._reject_input(job, exc)
            return None

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


@dataclasses.dataclass(frozen=True, slots=True)
class AdoptCommands:
    """The commands the engine tells the operator to paste — `runner adopt` for a job held back by a video at its name,
    `runner show` / `runner adopt KEY TASK` when a POST's answer cannot land (:mod:`.landing`) — for a shell, with the
    manifest's path and the ledger's flags the run was given (quoted already: a PostgreSQL ledger's may name
    ``"$RUNNER_LEDGER_URL"``): pasted, they open that run's ledger; ``ledger_note``: what must be known to paste them
    (a password left out), else ""."""

    manifest_file: str | None = None  # None: MANIFEST (the engine run without a file: a test's)
    ledger_words: tuple[str, ...] = ()
    ledger_note: str = ""

    @classmethod
    def of(cls, config: EngineConfig) -> AdoptCommands:
        return cls(config.manifest_file, config.ledger_words, config.ledger_note)

    def one(self, key: str) -> str:
        return self.line("adopt", key, "--file")

    def every(self) -> str:
        return self.line("adopt", self.manifest_file or "MANIFEST", "--held-back")

    def line(self, *words: str) -> str:
        """``runner WORDS… <the ledger's flags>``, quoted for a shell (the engine's other hints: `runner show KEY`)."""
        return " ".join([shlex.join(["runner", *words]), *self.ledger_words])


class Destinations:
    """The folders of one run's jobs, each probed before its first job is sent and again now and then (see the module
    docstring)."""

    def __init__(self, store: OutputStore, ledger: LedgerBackend, state: RunState, reporter: ev.Reporter, *,
                 clock: Callable[[], float], shared: bool, collecting: bool = True,
                 adopt: AdoptCommands = AdoptCommands()) -> None:
        self.store = store
        self.adopt = adopt
        self.ledger = ledger
        self.state = state
        self.reporter = reporter
        self.clock = clock
        self.shared = shared  # a shared ledger: any problem stops this runner's submits, its claims given back
        self._takes: dict[str, float] = {}  # folders that took a file this run: when (clock)
        self._refuses: dict[str, str] = {}  # folders that did not: why
        self.unsent = 0  # jobs not sent: their videos could not be stored
        self.first: str | None = None  # the first of those problems, as said
        self.whole_disk = False  # the disk itself is read-only (or full): nothing more can be stored
        # Videos this run will not collect but that will need room (`runner submit`: tasks sent earlier, results not
        # downloaded yet, for `collect`), read once, when the first job is checked; a collecting run counts them as
        # it follows and downloads them (RunState).
        self._collecting = collecting
        self._earlier: int | None = None
        self._said_later = False

    def admit(self, job: JobRecord, ahead: int = 0) -> Verdict:
        """Whether ``job`` may be sent: its video can be stored (see :meth:`Admission.storable`)."""
        why = self.problem(job, ahead)
        if why is None:
            return "send"
        if why is LATER:
            return "later"
        if (self.whole_disk or self.shared) and self.state.stop(StopReason.UNSTORABLE, submitting_only=True):
            self.reporter.emit(ev.Stopping(reason=str(StopReason.UNSTORABLE)))
            if self.shared:
                self.ledger.release_claims(self.ledger.owner)  # for runners on other hosts to send
        return "hold"

    def finish(self) -> None:
        """The submits are over: the run ends with :meth:`error` once it has collected (when jobs were not sent)."""
        error = self.error()
        if error is not None:
            self.state.end_with(error)

    def problem(self, job: JobRecord, ahead: int = 0) -> str | None:
        """Why ``job``'s video could not be stored where its download will put it, or None when it can."""
        targets = self.ledger.targets_of(job.key)
        if not targets:
            return None  # no longer in any manifest (an edit): kept as an orphan, checked at its download
        rel = output_path(*targets[0])  # where the download stores it (the others are linked to it)
        folder = rel.rpartition("/")[0]
        why = self._refuses.get(folder)
        if why is None:
            probed = self._takes.get(folder)
            fresh = probed is not None and self.clock() - probed < PROBE_AGAIN_S
            why = self._name_problem(rel, job.key) if fresh else self._probe(rel, folder, job.key)
            if why is None:
                why = self._room(rel, job, ahead)
            if why is None or why is LATER:
                return why
            log.error("job %s was not sent: %s", job.key, why)
        self.unsent += 1
        if self.first is None:
            self.first = why
        return why

    def error(self) -> DiskError | None:
        """What the run ends with when jobs were not sent (None: every job's video could be stored)."""
        if not self.unsent:
            return None
        return DiskError(f"{self.unsent} job(s) were not sent (the first: {self.first}). Nothing was paid for them;"
                         " they stay pending, and once that is fixed the next run sends them")

    def _room(self, rel: str, job: JobRecord, ahead: int) -> str | None:
        """Whether the disk has room for this job's video besides the ones this run waits for — tasks it follows,
        videos on their way to the downloads — (a full disk stops the submits: nothing more could be stored), and
        the ledger's disk (the state directory's) its reserve: counted with the videos when both are one disk."""
        room = self.store.room(rel, DB_NAME)
        if room is None:
            return None
        free, ledger_free = room
        reserve = DISK_RESERVE if ledger_free is None else 0
        if ledger_free is not None and ledger_free < DISK_RESERVE:  # the outputs on a disk of their own: the
            self.whole_disk = True                                     # ledger's reserve is looked for on its disk
            return (f"the disk that holds the ledger ({self.store.describe(DB_NAME)}) has {by_size(ledger_free)}"
                    f" free, and {by_size(DISK_RESERVE)} are kept free there for the ledger's writes (the videos"
                    " go to another disk); free space on it and run again")
        if self._earlier is None:
            counts = {} if self._collecting else self.ledger.counts()
            self._earlier = counts.get(JobState.RUNNING, 0) + counts.get(JobState.SUCCEEDED, 0)
        on_the_way = self.state.followed + self.state.unstored + ahead  # this run will store these, then look again
        waiting = self._earlier + on_the_way
        video = video_bytes(job.model, job.request)
        need = reserve + (waiting + 1) * video
        if free >= need:
            return None
        kept = f" besides {by_size(reserve)} kept for the ledger" if reserve else ""
        if on_the_way and self._collecting and not self.shared and free >= reserve + (self._earlier + 1) * video:
            if not self._said_later:  # once a run: why fewer tasks are outstanding than the concurrency allows
                self._said_later = True
                log.warning("the disk that holds %s has %s free: room for about %d video(s) of %s%s, so no more than"
                            " that are paid for and not stored at once (free space to go faster)",
                            self.store.describe(rel), by_size(free), (free - reserve) // video, by_size(video), kept)
            return LATER  # room for it once those are stored (each download ends with a look again): not sent yet
        self.whole_disk = True
        guess = f"a guess from the {seconds_asked(job.request)} s asked for"
        videos = (f"the {waiting} video(s) paid for and not stored yet and this one may take {by_size(need - reserve)}"
                  f" ({guess}: {by_size(video)} for this one)") if waiting else f"its video may take {by_size(video)} ({guess})"
        ledger = f", and {by_size(reserve)} are kept free for the ledger" if reserve else ""
        return (f"its video could not be stored: the disk that holds {self.store.describe(rel)} has {by_size(free)}"
                f" free; {videos}{ledger}; free space (or lower the concurrency) and run again")

    def _name_problem(self, rel: str, key: str) -> str | None:
        """The name itself (that job's alone): a link planted at it; a folder or a FIFO in its place; or a file at it
        (or at the job's beside name) that no job in the ledger records — the video of this very job, paid for
        already, when the ledger was restored from a backup older than its submit (sending it would pay again)."""
        try:
            self.store.check_name(rel)
        except (OSError, UnsafeDestination) as exc:
            return self._unsent(rel, exc)
        kind = self.store.kind(rel)
        if kind in ("folder", "other"):  # its download would fail run after run, the video paid for (OS sweep)
            thing = "a folder" if kind == "folder" else "a special file (a FIFO, a socket, a device)"
            return (f"its video could not be stored at {rel}: {self.store.describe(rel)} is {thing}, not a video; move"
                    " it away (or change the manifest's output) and run again")
        note = f"; {self.adopt.ledger_note}" if self.adopt.ledger_note else ""
        for name in (rel, beside_name(rel, key)):
            if (kind if name == rel else self.store.kind(name)) == "file" and self.ledger.key_at_path(name) is None:
                return (f"{name} already holds a video that no job in the ledger records (a ledger restored from a"
                        " backup older than this job's submit? a file put there by hand?); it may be this job's, paid"
                        f" for already: if it is, `{self.adopt.one(key)}` records the job done from it (nothing"
                        f" paid again; `{self.adopt.every()}` does every such job{note}), else move the file"
                        " away to send the job (and pay for it again)")
        return None

    def _probe(self, rel: str, folder: str, key: str) -> str | None:
        """The folder (made, checked, a file created in it), the first time and after PROBE_AGAIN_S; remembered either way — unless the
        problem is the name's own (a link at it, too long), which holds back its job alone."""
        name = self._name_problem(rel, key)
        if name is not None:
            return name
        try:
            self.store.probe(rel)
        except (OSError, UnsafeDestination) as exc:
            why = self._unsent(rel, exc)
            if not (isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG):
                if len(self._refuses) >= _REMEMBERED:
                    self._refuses.clear()
                self._refuses[folder] = why
            return why
        if len(self._takes) >= _REMEMBERED:
            self._takes.clear()
        self._takes[folder] = self.clock()
        return None

    def _unsent(self, rel: str, exc: OSError | UnsafeDestination) -> str:
        """Why, as said (once for a folder: its later jobs are not logged again)."""
        if not isinstance(exc, OSError):
            why = f"its video could not be stored at {rel}: {exc}"
        else:
            where = exc.filename or self.store.describe(rel)
            if exc.errno in WHOLE_DISK_ERRNOS:
                self.whole_disk = True
                fix = whole_disk_fix(exc.errno)
            elif (whose := refused(exc)) is not None:  # another user's folder (`sudo runner run` made it)
                fix = whose
            else:
                fix = "fix the folder (its permissions, a file in its way) or the manifest's output, and run again"
            why = f"its video could not be stored at {rel}: cannot write {where}: {exc.strerror or exc}; {fix}"
        return why

