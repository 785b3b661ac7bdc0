"""The check of a new ledger reads, read-only, the other ledgers of the book of this host's ledgers that are still
where they were run. Those reads must neither hold the book nor speak in this run's output.

A ledger slow to read (a stalled mount, a disk spinning up, a lock held by another process): read inside the book's
write transaction, it held the book, every other run of this user waited the book's busy timeout (5 s) and went on
without noting its ledger, and a second new ledger of the same batch, checked against a book without the first's
entry, paid for the batch again. A ledger older than its mark: its warning ("What follows reads that older ledger")
was printed by a run of another batch, which reads nothing of it. The simulator on a loopback port judges what was
paid.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from runner.client.connection import provider_identity
from runner.ledger.book import Entry, book_path, note

from test_cli_support import (
    TWO_OTHER_JOBS,
    ProviderFactory,
    finish_cli,
    provider,
    run_args,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def _reading(pid: int, file: Path) -> bool:
    """Whether process ``pid`` has ``file`` open (Linux: /proc/PID/fd)."""
    try:
        return any(os.readlink(fd) == str(file) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc/PID/fd to see a file opened")
def test_a_ledger_slow_to_read_does_not_hold_the_book_while_a_second_new_ledger_pays_again(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    # Another batch's ledger on the book, which no one can read while this test holds it (an exclusive lock: each
    # read waits SQLite's busy timeout, as it waits on a stalled mount).
    slow = tmp_path / "other" / "state"
    slow.mkdir(parents=True)
    held = sqlite3.connect(slow / "ledger.db", isolation_level=None)
    held.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    held.execute("BEGIN EXCLUSIVE")
    note(book_path(), Entry("another-batch", str(slow), False, socket.gethostname(), provider_identity(sim.base_url),
                            ("other",), ("0" * 64,), armed_at=time.time(), last_seen=time.time()))
    runs = []
    for folder in (tmp_path / "a", tmp_path / "b"):  # one batch, its manifest copied to two folders, run at once
        folder.mkdir()
        runs.append(start_cli(*run_args("run", write_manifest(folder), folder / "state", *sim.engine_args()),
                              cwd=tmp_path))
    try:
        for run in runs:
            wait_for(lambda run=run: _reading(run.pid, slow / "ledger.db"), what="each run to read the slow ledger")
    finally:
        held.execute("ROLLBACK")  # readable again
        held.close()
        said = [finish_cli(run) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 2], said  # the second to note its ledger is refused: the other one runs the batch
    refused = said[[run.returncode for run in runs].index(2)]
    assert "planned in the ledger at" in refused and "nothing was sent" in refused, refused
    assert not any("could not note this ledger" in text for text in said), said
    assert sim.accepted() == 3, "the same batch was paid for twice"


def test_another_batchs_ledger_older_than_its_mark_is_not_told_of_in_this_run(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    trio, other = write_manifest(tmp_path / "a"), write_manifest(tmp_path / "b", TWO_OTHER_JOBS, "other.yaml")
    older = tmp_path / "a" / "state"
    assert run_cli(*run_args("run", trio, older, *sim.engine_args()), cwd=tmp_path).code == 0
    shutil.copy(older / "ledger.db", tmp_path / "backup.db")
    assert run_cli(*run_args("run", trio, older, *sim.engine_args()), cwd=tmp_path).code == 0
    shutil.copy(tmp_path / "backup.db", older / "ledger.db")  # restored from a backup: behind its mark
    ran = run_cli(*run_args("run", other, tmp_path / "b" / "state", *sim.engine_args()), cwd=tmp_path)
    assert ran.code == 0 and sim.accepted() == 5, str(ran)
    assert str(older) not in ran.stderr, "a run of another batch spoke of a ledger it does not read"
    said = run_cli(*run_args("run", trio, older, *sim.engine_args()), cwd=tmp_path)  # that ledger's own run tells
    assert said.code == 2 and "is older than what this state directory last recorded" in said.stderr, str(said)
