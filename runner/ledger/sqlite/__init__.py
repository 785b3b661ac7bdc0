"""The SQLite ledger backend: ``<state>/ledger.db``, one writer at a time.

Modules: ``ledger`` (the one :class:`SqliteLedger` class, delegating to the modules below),
``opening`` (:func:`open_ledger`: the lock, creation, the guard against a ledger silently
created again), ``planning`` (register a manifest), ``reads`` (jobs, pages, counts), ``spend``
(spend, estimates, orphans), ``files`` (stored paths, the renames journal), ``runs`` (meta,
runs), ``owners`` (leases, claims, recovery of expired work), ``replay`` (the rescue journal),
``transitions`` (the state transitions), ``review`` (reject, accept, regenerate a rejected job),
``moves`` (the SQL of one guarded move), ``identity`` (the file removed or replaced under a run), ``mark``
(the commit mark: a ledger put back older than its commits), ``copied`` (a state directory copied by other tools),
``moved`` (the mark that a ledger's jobs went on elsewhere). The connection, lock, schema and rescue journal it
uses live beside it in :mod:`runner.ledger`.
"""

from __future__ import annotations

from runner.ledger.sqlite.ledger import (
    DB_NAME,
    LOCK_NAME,
    PROVIDER_MARK,
    RESCUE_PREFIX,
    SqliteLedger,
)
from runner.ledger.sqlite.opening import COPYING_NAME, ledger_traces, lock_path, open_ledger

__all__ = [
    "COPYING_NAME",
    "DB_NAME",
    "LOCK_NAME",
    "PROVIDER_MARK",
    "RESCUE_PREFIX",
    "SqliteLedger",
    "ledger_traces",
    "lock_path",
    "open_ledger",
]
