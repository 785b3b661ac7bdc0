"""SQLite's temporary files in memory only where no folder SQLite would put them in may be written
(runner/ledger/scratch.py; a container's read-only root is tests/acceptance/test_cli_container.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runner.ledger import scratch


def _temp_store(tmp_path: Path) -> int:
    raw = scratch.temporaries_kept(sqlite3.connect(":memory:"))
    try:
        return int(raw.execute("PRAGMA temp_store").fetchone()[0])
    finally:
        raw.close()


def test_memory_only_where_no_folder_may_take_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tmp_path / "gone"
    monkeypatch.setattr(scratch, "_FOLDERS", (str(gone / "var-tmp"), str(gone / "tmp"), str(gone / "cwd")))
    monkeypatch.setenv("SQLITE_TMPDIR", str(gone / "sqlite"))
    monkeypatch.setenv("TMPDIR", "")
    assert not scratch.sqlite_has_a_temporary_folder()
    assert _temp_store(tmp_path) == 2  # MEMORY
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # a folder it may write: the files go there, as SQLite decides
    assert scratch.sqlite_has_a_temporary_folder()
    assert _temp_store(tmp_path) == 0  # DEFAULT
