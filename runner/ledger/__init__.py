"""The ledger: the single source of truth of job states, behind one backend protocol.

    from runner.ledger import open_ledger
    with open_ledger(Path("state")) as ledger:
        ledger.register(manifest.name, manifest.digest, expand(manifest))
        attempt = ledger.mark_submitting(key)          # committed before the POST
        ledger.mark_running(key, attempt, task_id=..., http_status=200)

Modules: ``api`` (the :class:`LedgerBackend` protocol and its rules), ``records`` (typed
records), ``sqlite/`` (the SQLite backend: ``<state>/ledger.db``), ``memory`` (an in-memory
backend for engine tests; its helpers ``memory_tables``, ``memory_reads``, ``memory_owners``,
``memory_moves``), ``schema`` (numbered migrations), ``connection`` (sqlite3 + pragmas +
transactions + error translation), ``lock`` (single writer), ``rescue`` (the rescue journal),
``placement`` (stored files renamed to match an edited manifest).
"""

from __future__ import annotations

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
