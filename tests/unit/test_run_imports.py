"""What `runner run` imports (issue 14): the ledger's SQLite layer does not drag in pandas and numpy (sqlite-utils
imported them when installed, and `datasets` installs both: 0.5-1.5 s of CPU at every start; the ledger no longer
uses sqlite-utils). Asserted on the modules imported, never a timing."""

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
    assert "runner.ledger.sqlite.moves" in modules  # the probe reached the ledger's SQLite layer
    assert not {"pandas", "numpy", "pyarrow", "sqlite_utils"} & modules

