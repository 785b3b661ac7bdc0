"""A ledger with flipped bytes is refused as corrupt, with the way to recover, before anything is written."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import LedgerError, LedgerSchemaError
from runner.jobs import JobSpec
from runner.ledger import open_ledger


def spec(i: int) -> JobSpec:
    return JobSpec.build(
        model="kling-v3.0-pro-t2v",
        request={"prompt": f"a slow pan over city {i} " + "x" * 200, "duration": 5},
        vars={"i": i},
        repeat=1,
        output=f"{i}.mp4",
        estimated_usd=0.56,
    )


def make_ledger(state: Path, jobs: int = 400) -> Path:
    """A cleanly closed ledger of ``jobs`` jobs; returns its file."""
    with open_ledger(state) as ledger:
        ledger.register("m", "d", (spec(i) for i in range(jobs)))
    db = state / "ledger.db"
    assert not (state / "ledger.db-wal").exists()  # checkpointed on close
    return db


def flip_page(db: Path, page: int, count: int = 48) -> None:
    """XOR ``count`` bytes at the start of ``page`` (1-based): its b-tree header and cell pointers."""
    raw = sqlite3.connect(db)
    size = int(raw.execute("PRAGMA page_size").fetchone()[0])
    pages = int(raw.execute("PRAGMA page_count").fetchone()[0])
    raw.close()
    assert 1 < page <= pages
    data = bytearray(db.read_bytes())
    start = (page - 1) * size
    for offset in range(start, start + count):
        data[offset] ^= 0xFF
    db.write_bytes(bytes(data))


def middle_page(db: Path) -> int:
    raw = sqlite3.connect(db)
    pages = int(raw.execute("PRAGMA page_count").fetchone()[0])
    raw.close()
    return pages // 2


def root_page(db: Path, table: str) -> int:
    raw = sqlite3.connect(db)
    page = int(raw.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])
    raw.close()
    return page


def test_flipped_bytes_are_refused_for_writing_as_corrupt(tmp_path: Path) -> None:
    """Opening a damaged ledger to write says 'corrupt', how to recover, and changes nothing."""
    db = make_ledger(tmp_path)
    flip_page(db, middle_page(db))
    before = db.read_bytes()
    with pytest.raises(LedgerSchemaError) as caught:
        open_ledger(tmp_path)
    message = str(caught.value)
    assert "corrupt" in message and str(db) in message
    assert ".recover" in message and "backup" in message
    assert db.read_bytes() == before
    # The refusal gave the lock back.
    with pytest.raises(LedgerSchemaError):
        open_ledger(tmp_path)


def test_reading_a_damaged_ledger_says_corrupt(tmp_path: Path) -> None:
    """A reader that reaches a damaged page gets the same clear message, never a raw sqlite3 error."""
    db = make_ledger(tmp_path)
    flip_page(db, root_page(db, "jobs"))
    with pytest.raises(LedgerError) as caught, open_ledger(tmp_path, readonly=True) as reader:
        list(reader.iter_jobs("m"))
        reader.counts("m")
    assert "corrupt" in str(caught.value) and ".recover" in str(caught.value)


def test_a_sound_ledger_passes_the_check(tmp_path: Path) -> None:
    """The check finds nothing wrong with a ledger that is fine (and after an unclean close)."""
    make_ledger(tmp_path)
    crash = (
        "import os, sys\n"
        "from runner.ledger import open_ledger\n"
        "ledger = open_ledger(sys.argv[1])\n"
        "ledger.recover_expired(ledger.owner)\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(tmp_path)], check=False, timeout=60)
    assert (tmp_path / "ledger.db-wal").exists()  # not closed cleanly
    with open_ledger(tmp_path) as again:
        assert again.total() == 400


def test_a_value_that_cannot_be_read_back_is_called_corrupt(tmp_path: Path) -> None:
    """Damage inside a record (bad JSON, an unknown state) reads as 'corrupt', not as a ValueError."""
    db = make_ledger(tmp_path, jobs=3)
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA ignore_check_constraints = ON")
    raw.execute("UPDATE jobs SET request_json = '{\"prompt\": ' WHERE id = 1")
    raw.execute("UPDATE jobs SET state = 'p\x01nding' WHERE id = 2")
    raw.commit()
    raw.close()
    with open_ledger(tmp_path, readonly=True) as reader:
        for read in (lambda: list(reader.iter_jobs("m")), lambda: reader.get(spec(0).key),
                     lambda: reader.states_of([spec(1).key])):
            with pytest.raises(LedgerSchemaError, match="corrupt") as caught:
                read()
            assert "unreadable" in str(caught.value) and ".recover" in str(caught.value)
