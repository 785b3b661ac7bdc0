"""What a service call ends with: the exit code, the counts, the engine's result and what it said.

The exit codes are the CLI's (``runner --help``, README), defined here so that a library user gets the
same answer the command line would give: ``Outcome.exit_code``, or :func:`exit_code_for` of an error
a service function raised.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from runner.engine import RunResult
from runner.errors import (
    AuthError,
    BalanceError,
    DiskError,
    EndpointNotFound,
    JobMovedOn,
    LedgerCloned,
    LedgerLocked,
    LedgerLostCommits,
    LedgerMissing,
    LedgerNotReached,
    LedgerOutdated,
    LedgerReplaced,
    LedgerSchemaError,
    LedgerSetupError,
    ManifestError,
    ProviderUnreachable,
    RunnerError,
    UsageError,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_FORCED",
    "EXIT_IN_DOUBT",
    "EXIT_LOCAL",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Notice",
    "Notify",
    "Outcome",
    "exit_code_for",
]

EXIT_OK = 0  # every job done
EXIT_FAILED = 1  # some jobs failed or were lost
EXIT_USAGE = 2  # manifest or usage error: nothing was sent
EXIT_STOPPED = 3  # stopped with work outstanding (signal, --max-runtime, budget, submit-only)
EXIT_IN_DOUBT = 4  # stopped with in-doubt jobs held for a decision
EXIT_UNREACHABLE = 5  # the provider could not be reached at all: nothing was sent (network, --base-url)
EXIT_LOCAL = 6  # the state directory or its ledger could not be written (a full disk): the run stopped
EXIT_LOCKED = 75  # another runner holds this ledger (EX_TEMPFAIL)
EXIT_FORCED = 130  # stopped at once by a second stop signal (Ctrl-C twice): a POST cut off is in doubt next time


# OS errors the next run would meet again until someone acts: exit 6, as a DiskError (the CLI's last net turns an
# OSError no adapter translated into one: runner/cli/common.py)
LOCAL_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO,
                          errno.EMFILE})  # (the process's open-file limit, ulimit -n: the next run has the same)


def exit_code_for_os_error(exc: OSError) -> int:
    """The exit code of a command that ended with an OSError nothing translated (6 or 3)."""
    return EXIT_LOCAL if exc.errno in LOCAL_ERRNOS else EXIT_STOPPED


def exit_code_for(error: RunnerError) -> int:
    """The exit code of a run that ended with ``error``.

    75 another runner holds the ledger; 2 the input must be fixed before
    anything can be sent (manifest, flags, key, a base URL with no API behind
    it, a corrupt, newer or missing ledger, one older than its mark or a PostgreSQL server that lost commits, a PostgreSQL server set up so that it cannot
    hold the ledger: a transaction pooler, a role without the rights); 5 the provider, or a PostgreSQL ledger's server as the command opened it,
    could not be reached;
    6 the state directory or its ledger could not be written (a full disk, a
    read-only file system: someone must act, so a cron unit that takes 3 as
    success still fails); 4 a paid task's answer found its job taken over by another runner (its id
    is in the rescue journal); 3 otherwise: work is outstanding and a later run resumes it (a PostgreSQL
    ledger's connection lost mid-run included: a restart or a failover passes, and the next start resumes).
    """
    if isinstance(error, LedgerLocked):
        return EXIT_LOCKED
    if isinstance(error, (ManifestError, UsageError, AuthError, EndpointNotFound, LedgerSchemaError, LedgerMissing,
                          LedgerOutdated, LedgerLostCommits, LedgerCloned, LedgerSetupError)):
        return EXIT_USAGE
    if isinstance(error, (ProviderUnreachable, LedgerNotReached)):
        return EXIT_UNREACHABLE
    if isinstance(error, (DiskError, LedgerReplaced)):  # a ledger error of another kind (LedgerUnreachable…): 3
        return EXIT_LOCAL
    if isinstance(error, JobMovedOn):
        return EXIT_IN_DOUBT
    if isinstance(error, BalanceError):
        return EXIT_STOPPED
    return EXIT_STOPPED


Level = Literal["info", "notice", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing a service call tells its user while it works.

    ``info``: progress (the CLI drops it with ``-q``); ``notice``: always shown; ``warning``: needs a
    decision or a look; ``error``: the run stopped on ``error`` but its exit code asks for something else.
    ``fields``: the same facts for a machine (``--log-json`` writes them beside the text; ``event`` names it).
    """

    text: str
    level: Level = "info"
    error: RunnerError | None = None
    fields: Mapping[str, Any] | None = None


Notify = Callable[[Notice], None]


@dataclass(slots=True)
class Outcome:
    """How a service call ended: ``exit_code`` as the CLI exits, the scope's jobs by state (``counts``),
    the engine's :class:`~runner.engine.RunResult` when it ran, and every :class:`Notice` it gave."""

    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    result: RunResult | None = None
    messages: list[Notice] = field(default_factory=list)
    ledger_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK
