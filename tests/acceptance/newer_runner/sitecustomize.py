"""A newer runner, for the runner processes a test starts with ``PYTHONPATH=<this folder>:…``: its PostgreSQL schema
has one migration more than this checkout's (a table and a column, as a real one would add), and it calls itself
version ``NEWER``. Loaded by Python at start-up (the ``site`` module), before the runner's first import; the modules
that took the schema's names at their import are given the new ones."""

from __future__ import annotations

import runner.distribution

NEWER = "99.0.0"
STEP = """
CREATE TABLE upgrade_probe (id BIGINT PRIMARY KEY);
ALTER TABLE jobs ADD COLUMN probe INTEGER NOT NULL DEFAULT 0;
"""

runner.distribution.installed_version = lambda: NEWER  # before any module imported it by name

import runner.ledger.postgres.schema as _schema  # noqa: E402
import runner.ledger.postgres.version as _version  # noqa: E402

_schema.MIGRATIONS = (*_schema.MIGRATIONS, STEP)
_schema.SCHEMA_VERSION = len(_schema.MIGRATIONS)
for _module in (_schema, _version):
    for _name in ("MIGRATIONS", "SCHEMA_VERSION"):
        if hasattr(_module, _name):
            setattr(_module, _name, getattr(_schema, _name))
