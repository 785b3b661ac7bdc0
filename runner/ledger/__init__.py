"""The ledger: a SQLite file per state directory, single source of truth of job states.

    from runner.ledger import open_ledger
    with open_ledger(Path("state")) as ledger:
        ledger.register(manifest.name, manifest.digest, expand(manifest))
        attempt = ledger.mark_submitting(key)          # committed before the POST
        ledger.mark_running(key, attempt, task_id=..., http_status=200)

Modules: ``schema`` (numbered migrations), ``connection`` (sqlite3 + pragmas +
transactions + error translation), ``lock`` (single writer), ``records``
(typed records), ``store`` (the :class:`Ledger` API), ``placement`` (stored files
renamed to match an edited manifest).
"""

from __future__ import annotations

from runner.ledger.placement import (
    Realigned,
    is_foreign,
    needs_realigning,
    realign_outputs,
)
from runner.ledger.records import AttemptRecord, JobRecord, RunRecord
from runner.ledger.schema import SCHEMA_VERSION
from runner.ledger.store import (
    DB_NAME,
    LOCK_NAME,
    ORPHANS_DIR,
    OUTPUTS_DIR,
    PROVIDER_MARK,
    RESCUE_PREFIX,
    Ledger,
    ledger_traces,
    lock_path,
    open_ledger,
)

__all__ = [
    "DB_NAME",
    "LOCK_NAME",
    "ORPHANS_DIR",
    "OUTPUTS_DIR",
    "PROVIDER_MARK",
    "RESCUE_PREFIX",
    "SCHEMA_VERSION",
    "AttemptRecord",
    "JobRecord",
    "Ledger",
    "Realigned",
    "RunRecord",
    "is_foreign",
    "ledger_traces",
    "lock_path",
    "needs_realigning",
    "open_ledger",
    "realign_outputs",
]
