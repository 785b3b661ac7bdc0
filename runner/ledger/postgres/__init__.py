"""The PostgreSQL ledger backend: one database shared by any number of runners on any hosts.

Modules: ``ledger`` (the :class:`PostgresLedger` class), ``opening`` (:func:`open_postgres_ledger`), ``owners``
(leases, claims with ``FOR UPDATE SKIP LOCKED``, recovery of expired owners' work, the rescue
journal's replay), ``moves`` (the SQL of one guarded move), ``planning`` (``register``), ``reads``
(the queries of the read methods), ``schema`` (numbered migrations, PostgreSQL dialect),
``version`` (the schema check as a connection opens, its creation and migration), ``home`` (where the ledger was
made: a copy made by a DBA's tools refused), ``connection``
(psycopg, transactions, a lost connection made good, errors), ``urls``
(telling a URL, naming it without its password), ``clock`` (the database server's clock) and ``transfer``
(``runner ledger copy``, both ways; its source ``copy_source``, its destination ``copy_destination``, the tables
it moves ``copy_tables``).
The driver, psycopg 3, is imported only when a PostgreSQL ledger is opened (``runner[postgres]``).
"""

from __future__ import annotations

from runner.ledger.postgres.ledger import PostgresLedger
from runner.ledger.postgres.opening import open_postgres_ledger
from runner.ledger.postgres.urls import is_postgres_url, redacted

__all__ = ["PostgresLedger", "is_postgres_url", "open_postgres_ledger", "redacted"]
