"""A PostgreSQL ledger's host marks on a full disk (runner/ledger/postgres/hostmarks.py): a mark that could not be
made leaves no empty file behind, and a mark that cannot be updated says so once, not at every COMMIT."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.ledger.postgres.hostmarks import FOLDER, HostMark
from runner.testing import fill_disk

SmallDisk = Callable[..., Path]  # the suite's fixture (tests/conftest.py)


def test_a_mark_that_cannot_be_made_on_a_full_disk_leaves_no_empty_file(tmp_path: Path,
                                                                          small_disk: SmallDisk) -> None:
    """The file was opened O_CREAT, then its write refused: an empty `.mark` stayed, never read, never removed."""
    state = small_disk(tmp_path / "state", size="1m")
    (state / FOLDER).mkdir()
    filler = fill_disk(state)
    with pytest.raises(OSError):
        HostMark(state / FOLDER / "abc-1.mark", "abc", "1", "postgresql://h/db schema public", 0.0, [])
    assert list((state / FOLDER).iterdir()) == []
    filler.unlink()


def test_a_mark_that_cannot_be_updated_warns_once_then_once_when_it_can_again(
    tmp_path: Path, small_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """One warning per COMMIT on a full disk (thousands a run): one as it starts failing, one as it recovers."""
    state = small_disk(tmp_path / "state", size="1m")
    mark = HostMark(state / FOLDER / "abc-1.mark", "abc", "1", "postgresql://h/db schema public", 0.0, [])
    shutil.rmtree(state / FOLDER)  # set aside while the runner runs: the next COMMIT makes it again
    filler = fill_disk(state)
    with caplog.at_level(logging.INFO, logger="runner.ledger"):
        for commit in range(1, 6):
            mark.committed(commit, 0.0)
        assert next(r.getMessage() for r in caplog.records if "write mark" in r.getMessage()).startswith("cannot")
        assert sum("write mark" in r.getMessage() for r in caplog.records) == 1
        assert not any(p.stat().st_size == 0 for p in (state / FOLDER).glob("*.mark"))  # no empty mark left
        filler.unlink()
        mark.committed(6, 0.0)
        mark.committed(7, 0.0)
    said = [r.getMessage() for r in caplog.records if "write mark" in r.getMessage()]
    assert len(said) == 2 and "again" in said[1], said
    assert (state / FOLDER / "abc-1.mark").read_text().splitlines()[-1].startswith(f"mark {7:020d}")
