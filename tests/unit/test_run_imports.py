"""What `runner run` imports (issue 14): the ledger's SQLite layer does not drag in pandas and numpy (sqlite-utils
imports them when installed; `datasets` installs both), which cost every run 0.5-1.5 s of CPU at start-up.
Asserted on the modules imported, never a timing."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import runner.service.running, runner.engine, runner.ledger.sqlite, runner.ledger.sqlite.moves
print(json.dumps(sorted(sys.modules)))
"""


def test_the_run_path_imports_neither_pandas_nor_numpy() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True).stdout
    modules = set(json.loads(out))
    assert "sqlite_utils.db" in modules  # the probe reached the ledger's SQLite layer
    assert not {"pandas", "numpy", "pyarrow"} & modules


def test_pandas_still_imports_after_the_ledger() -> None:
    """Hidden only while sqlite-utils is imported: the Hugging Face export imports pandas afterwards as usual."""
    code = "import runner.ledger.sqlite_db, pandas, numpy; print(pandas.__name__, numpy.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split() == ["pandas", "numpy"]
