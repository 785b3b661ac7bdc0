"""The exception tree of ``runner``.

Every error the package raises on purpose derives from :class:`RunnerError`;
its docstring is its default message. Foreign exceptions (httpx, yaml,
pydantic, sqlite3) are translated once, at the module that talks to them,
with ``raise ... from exc``. Only the CLI turns these into exit codes.

    RunnerError
    ├── UsageError                 bad flags / environment (exit 2)
    ├── ManifestError              the manifest cannot be planned (exit 2)
    ├── ProviderError              talking to the provider went wrong
    │   ├── AuthError              key missing, wrong or not allowed: stop the run
    │   ├── BalanceError           BILLING_BALANCE_NOT_ENOUGH: stop the run
    │   ├── RequestRejected        a 4xx that will not change on retry
    │   ├── RateLimited            429; carries ``retry_after``
    │   ├── TransientError         5xx / network trouble on an idempotent GET
    │   │   └── ProviderUnreachable    no connection to the provider at all (exit 5)
    │   ├── EndpointNotFound       no API at this URL: the base URL is wrong (exit 2)
    │   ├── TaskNotFound           the provider does not know a task_id
    │   └── DownloadError          a result file could not be fetched or verified
    │       └── UrlExpired         the presigned URL answered 403/expired
    ├── LedgerError                the ledger (SQLite or PostgreSQL) cannot be used
    │   ├── LedgerLocked           another runner holds it (exit 75)
    │   ├── LedgerMissing          gone or emptied where one was used before (exit 2)
    │   ├── LedgerReplaced         removed or replaced while a run used it (exit 6)
    │   ├── LedgerOutdated         a SQLite ledger older than its commit mark: restored, copied without its WAL (exit 2)
    │   ├── LedgerLostCommits      a PostgreSQL server lost commits a runner saw: a failover, a restore (exit 2)
    │   ├── LedgerCloned           a PostgreSQL ledger found elsewhere than its home: pg_dump, TEMPLATE (exit 2)
    │   ├── LedgerDiskError        its file or its PostgreSQL server's disk: full, I/O, read-only (exit 6; also a DiskError)
    │   ├── LedgerNotReached       its PostgreSQL server could not be reached as a command opened it (exit 5)
    │   ├── LedgerUnreachable      the PostgreSQL server could not be reached again mid-run, or a COMMIT's answer was lost (exit 3)
    │   │   └── LedgerRolledBack   lost before a write's COMMIT was sent: rolled back, done once more
    │   ├── LedgerCancelled        a PostgreSQL statement cancelled by the server (pg_cancel_backend): done again
    │   ├── LedgerSetupError       a PostgreSQL server reached as the ledger cannot be: a transaction pooler, no rights (exit 2)
    │   ├── LedgerSchemaError      corrupt, or written by a newer runner
    │   └── LedgerSchemaMoved      a newer runner migrated a shared PostgreSQL ledger under this run (exit 3)
    ├── DiskError                  the state directory cannot be written: a full disk (exit 6)
    ├── BudgetExceeded             the next submit would pass the budget
    └── TaskIdTaken                mark_running refused an accepted task id a job already holds (nothing
                                   written; the submit lane holds the job in doubt, never an exit)

A submit never raises for an HTTP outcome: ``client.submit`` returns a
classified :class:`~runner.client.SubmitResult` (accepted / refused /
ambiguous), because the engine must record every outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "AuthError",
    "BalanceError",
    "BudgetExceeded",
    "DiskError",
    "DownloadError",
    "EndpointNotFound",
    "LedgerBusy",
    "LedgerCancelled",
    "LedgerCloned",
    "LedgerDiskError",
    "LedgerError",
    "LedgerLocked",
    "LedgerLostCommits",
    "LedgerMissing",
    "LedgerNotReached",
    "LedgerOutdated",
    "LedgerReplaced",
    "LedgerRolledBack",
    "LedgerSchemaError",
    "LedgerSchemaMoved",
    "LedgerSetupError",
    "LedgerUnreachable",
    "ManifestError",
    "ProviderError",
    "ProviderUnreachable",
    "RateLimited",
    "RequestRejected",
    "RunnerError",
    "TaskIdTaken",
    "TaskNotFound",
    "TransientError",
    "UrlExpired",
    "UsageError",
]


class RunnerError(Exception):
    """runner failed."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class UsageError(RunnerError):
    """The command line or environment is not usable."""


class ManifestError(RunnerError):
    """The manifest cannot be planned.

    ``path`` and ``line`` locate the offending YAML node when known; ``job``
    describes the job (its variables) when the error concerns one job;
    ``rule`` names the rule that was broken.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        job: str | None = None,
        rule: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.job = job
        self.rule = rule
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        suffix = f" (job {job})" if job else ""
        super().__init__(f"{where}{message}{suffix}")


class ProviderError(RunnerError):
    """The provider answered with an error."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class AuthError(ProviderError):
    """The provider refused the API key (missing, wrong or not allowed). Check NOVITA_API_KEY."""


class BalanceError(ProviderError):
    """The provider account has not enough balance (BILLING_BALANCE_NOT_ENOUGH)."""


class RequestRejected(ProviderError):
    """The provider refused the request for good; sending it again will not help."""


class RateLimited(ProviderError):
    """The provider answered 429 RATE_LIMIT_EXCEEDED."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = 429,
        reason: str | None = "RATE_LIMIT_EXCEEDED",
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, reason=reason)


class TransientError(ProviderError):
    """The provider or the network failed in a way that may pass."""


class ProviderUnreachable(TransientError):
    """The provider cannot be reached (connections refused or timed out); nothing was sent."""


class EndpointNotFound(ProviderError):
    """The provider has no API at this URL (404 API_NOT_FOUND): the base URL is wrong. Check --base-url."""


class TaskNotFound(ProviderError):
    """The provider does not know this task_id (TASK_NOT_FOUND)."""


class DownloadError(ProviderError):
    """A result file could not be downloaded or failed verification."""


class UrlExpired(DownloadError):
    """The result URL has expired; a fresh task-result call gives a new one."""


class LedgerError(RunnerError):
    """The ledger cannot be used."""


class LedgerLocked(LedgerError):
    """Another runner holds this ledger: ``holder`` names it, ``folder`` is the state directory (None: not a SQLite
    ledger's), ``stopped`` the holder's PID when it is stopped (Ctrl-Z, SIGSTOP) and so does nothing till resumed,
    ``command`` the runner command it runs (``verify``; None: unknown)."""

    def __init__(self, message: str | None = None, *, holder: str | None = None, folder: Path | None = None,
                 stopped: int | None = None, command: str | None = None) -> None:
        self.holder = holder
        self.command = command  # the runner command the holder runs (``verify``), when its lock says
        self.folder = folder
        self.stopped = stopped
        super().__init__(message)


class LedgerBusy(LedgerError):
    """The ledger cannot be read now: a runner is inside its first registration (a rollback journal in use)."""


class LedgerMissing(LedgerError):
    """There is no ledger where one is needed, or where one was used before (a new one would pay again)."""


class LedgerOutdated(LedgerError):
    """A SQLite ledger is older than its state directory's commit mark (restored from a backup, copied without its WAL,
    a disk snapshot rolled back): jobs it wrote ahead or recorded since read pending and would be paid for again.
    Refused before anything is written (exit 2)."""


class LedgerReplaced(LedgerError):
    """The ledger file was removed or replaced while this run was using it."""


class LedgerNotReached(LedgerError):
    """A PostgreSQL ledger's server could not be reached, or refused the connection, as a command opened it
    (refused, no answer, a wrong host, user, password or database): nothing was read or written. Exit 5, as a
    provider that cannot be reached: someone must look (3 would read as work outstanding — a success to a timer).
    Mid-run, a connection that cannot be made *again* is a :class:`LedgerUnreachable` (exit 3)."""


class LedgerUnreachable(LedgerError):
    """The connection to a PostgreSQL ledger was lost during a write's COMMIT (what the server did with it cannot be
    known), or lost again when a read or a rolled-back write was done once more, or could not be made again within
    ``RECONNECT_S`` (an idle connection the server dropped is made again first): the run stops (exit 3: it passes
    with time), and the next start resumes from what was recorded. ``detail``: the driver's words."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class LedgerRolledBack(LedgerUnreachable):
    """The connection was lost before a write's COMMIT was sent: the server rolled the write back, nothing of it
    happened, and it is done once more on a new connection (``once_more`` in the PostgreSQL ledger's connection)."""


class LedgerLostCommits(LedgerError):
    """A PostgreSQL server, connected to again, no longer holds changes this runner saw committed — or, as a run
    opens the ledger, changes a mark in its state directory saw (a failover to a replica that lagged, a restore from
    a backup): jobs written ahead or recorded may read pending again and be paid for again. The connection writes
    nothing more; the run stops saying so, exit 2 as a :class:`LedgerOutdated` (3 would read as work outstanding, a
    success to a timer: it went on nightly with nobody told)."""


class LedgerCloned(LedgerError):
    """A PostgreSQL ledger opened to write somewhere else than where it was made (its home: the server's system
    identifier, the database's and the schema's OIDs): copied or moved there by other tools than ``runner ledger copy``
    (``CREATE DATABASE … TEMPLATE``, ``pg_dump``/``pg_restore``, a migration to another server). Runs on both would
    each pay for the jobs the other sends; refused before anything is written, exit 2 as :class:`LedgerOutdated`."""


class LedgerCancelled(LedgerError):
    """A PostgreSQL ledger's statement was cancelled by the server (SQLSTATE 57014: ``pg_cancel_backend`` by a DBA or a
    monitoring script; the ledger's sessions set no statement_timeout). A read is read once more; a write was rolled
    back (before its COMMIT; during it, as the connection's write mark says) and is written once more as a
    :class:`LedgerRolledBack`. Raised when that cannot be known, or for a statement outside a write."""


class JobMovedOn(LedgerError):
    """A POST's answer could not land: its job is no longer submitting. On a shared ledger another runner took the job
    over (held it in doubt) while this one was stopped past its lease; the accepted id goes to the rescue journal."""


class LedgerSetupError(LedgerError):
    """The PostgreSQL server, as this URL reaches it, cannot hold the ledger safely: a connection pooler in transaction
    mode (the session a runner set up is not the one its next transaction runs on), or a role without the rights the
    ledger needs. Nothing was written; exit 2, as a wrong URL: the operator must change the set-up, no rerun helps."""


class LedgerSchemaError(LedgerError):
    """The ledger is corrupt or was written by a newer version of runner."""


class LedgerSchemaMoved(LedgerError):
    """A newer runner on another host migrated the schema of the PostgreSQL ledger this run shares (a rolling
    upgrade), seen by the transaction of a write-ahead, which wrote nothing: this run sends nothing more, and stops
    (exit 3: the upgraded hosts finish the batch); started again, this runner is refused at open until upgraded."""


class DiskError(RunnerError):
    """The state directory cannot be written: a full disk, a read-only file system, a file size limit."""


class LedgerDiskError(LedgerError, DiskError):
    """The ledger file cannot be written: a full disk, an I/O error, a read-only file system or folder."""


class BudgetExceeded(RunnerError):
    """Submitting the next job would pass the budget."""


class TaskIdTaken(RunnerError):
    """The task id is held by a job already; nothing was written.

    Raised by ``mark_running`` (every backend, checked inside the transaction that would record the id) when an
    accepted answer names a task that a job holds already — another job's current task, or any job's earlier
    task, this one's included. Not a :class:`LedgerError`: the write did not fail, it was refused, and the id must
    not go to the rescue journal; the caller holds the job in doubt (``TASK_ID_TAKEN``). ``holder`` is that job's key.
    """

    def __init__(self, task_id: str, holder: str) -> None:
        self.task_id = task_id
        self.holder = holder
        super().__init__(f"task {task_id} is held by job {holder} already")
