"""The ledger: the single source of truth of job states, behind one backend protocol.

    from runner.ledger import open_ledger
    with open_ledger(Path("state")) as ledger:
        ledger.register(manifest.name, manifest.digest, expand(manifest), salt=manifest.salt)
        attempt = ledger.mark_submitting(key)          # committed before the POST
        ledger.mark_running(key, attempt, task_id=..., http_status=200)

Modules: ``api`` (the :class:`LedgerBackend` protocol and its rules; its verbs by concept in ``api_reads``,
``api_owners``, ``api_transitions``, ``api_review``), ``moved_marks`` (a moved or copied ledger's marks), ``records`` (typed
records), ``sqlite/`` (the SQLite backend: ``<state>/ledger.db``), ``memory`` (an in-memory
backend for engine tests; its helpers ``memory_tables``, ``memory_reads``, ``memory_owners``,
``memory_moves``), ``schema`` (numbered migrations), ``connection`` (sqlite3 + pragmas +
transactions + error translation), ``lock`` (single writer), ``rescue`` (the rescue journal),
``placement`` (stored files renamed to match an edited manifest), ``set_aside`` (a rejected video a
regenerate moved aside, and a regenerate stopped after that move finished), ``twins`` (today's key of a job an older
runner keyed otherwise, when exact: planning keeps such jobs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.lazy import lazy_exports

if TYPE_CHECKING:  # the names below are imported on first use (start-up time: issue 14)
    from runner.ledger.api import LEASE_TTL_S, LedgerBackend
    from runner.ledger.memory import MemoryLedger
    from runner.ledger.placement import (
        Realigned,
        is_foreign,
        needs_realigning,
        realign_outputs,
    )
    from runner.ledger.records import AttemptRecord, JobRecord, RejectionRecord, RunRecord, RunSummary
    from runner.ledger.schema import SCHEMA_VERSION
    from runner.ledger.sqlite import (
        DB_NAME,
        LOCK_NAME,
        PROVIDER_MARK,
        RESCUE_PREFIX,
        SqliteLedger,
        ledger_traces,
        lock_path,
        open_ledger,
    )

# name -> the module that defines it: `runner plan` opens a SQLite ledger and never imports the in-memory one
_WHERE: dict[str, str] = {
    "LEASE_TTL_S": "runner.ledger.api",
    "LedgerBackend": "runner.ledger.api",
    "MemoryLedger": "runner.ledger.memory",
    "Realigned": "runner.ledger.placement",
    "is_foreign": "runner.ledger.placement",
    "needs_realigning": "runner.ledger.placement",
    "realign_outputs": "runner.ledger.placement",
    "AttemptRecord": "runner.ledger.records",
    "JobRecord": "runner.ledger.records",
    "RejectionRecord": "runner.ledger.records",
    "RunRecord": "runner.ledger.records",
    "RunSummary": "runner.ledger.records",
    "SCHEMA_VERSION": "runner.ledger.schema",
    "DB_NAME": "runner.ledger.sqlite",
    "LOCK_NAME": "runner.ledger.sqlite",
    "PROVIDER_MARK": "runner.ledger.sqlite",
    "RESCUE_PREFIX": "runner.ledger.sqlite",
    "SqliteLedger": "runner.ledger.sqlite",
    "ledger_traces": "runner.ledger.sqlite",
    "lock_path": "runner.ledger.sqlite",
    "open_ledger": "runner.ledger.sqlite",
}

__all__ = [
    "DB_NAME",
    "LEASE_TTL_S",
    "LOCK_NAME",
    "PROVIDER_MARK",
    "RESCUE_PREFIX",
    "SCHEMA_VERSION",
    "AttemptRecord",
    "JobRecord",
    "LedgerBackend",
    "MemoryLedger",
    "Realigned",
    "RejectionRecord",
    "RunRecord",
    "RunSummary",
    "SqliteLedger",
    "is_foreign",
    "ledger_traces",
    "lock_path",
    "needs_realigning",
    "open_ledger",
    "realign_outputs",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__, globals())
