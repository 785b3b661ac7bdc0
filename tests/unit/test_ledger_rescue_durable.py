"""The rescue journal's first line survives a power cut: its new directory entry is synced too (review)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runner.ledger import rescue


def test_creating_the_journal_syncs_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(rescue.os, "fsync", recording)
    entry = rescue.RescueEntry(key="k", task_id="t", attempt=1, at=1.0)
    assert rescue.append_entry(tmp_path, entry)
    assert synced == ["file", "dir"], synced  # the line, then the name that finds it
    synced.clear()
    assert rescue.append_entry(tmp_path, entry)
    assert synced == ["file"]  # an existing journal: its directory entry is durable already
