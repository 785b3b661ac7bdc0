"""Kills and readers around the first registration's rollback journal (``journal.rollback_journal``).

Crash windows and concurrent readers around ``journal.rollback_journal`` and ``rolled_back_copy``. A writer
is a child process paused at a chosen point (it prints ``paused <where>`` and waits for a line on stdin) and
killed there with SIGKILL. ``cache`` makes the child's bulk page cache small, so that its registration spills
pages into ``ledger.db`` (and takes SQLite's EXCLUSIVE lock) after a few thousand jobs, as a manifest of more
than ~110k jobs does with the real 64 MiB cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from children import reap

from runner.errors import LedgerBusy, LedgerError
from runner.jobs import JobState
from runner.ledger import connection, open_ledger

CHILD = """
import sys
from pathlib import Path
from runner.jobs import JobSpec
from runner.ledger import connection, open_ledger
from runner.ledger.sqlite import first, planning

state, name, n, cache, pauses, points = sys.argv[1:7]
first.FIRST_BATCH = 1000
if int(cache):
    connection._BULK_CACHE_KIB = int(cache)  # spill early: a manifest larger than the bulk cache
at = {int(i) for i in pauses.split(",") if i}
points = set(points.split(",")) - {""}

def pause(where):
    print("paused", where, flush=True)
    sys.stdin.readline()

real = planning._register
def _register(conn, *args, **kwargs):
    if kwargs.get("empty") and "before" in points:
        pause("before")  # journal_mode is DELETE, no BEGIN yet
    given = real(conn, *args, **kwargs)
    if kwargs.get("empty") and "after" in points:
        pause("after")  # committed, journal_mode still DELETE
    return given
planning._register = _register

def jobs():
    for i in range(int(n)):
        if i in at:
            pause(i)
        yield JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"harbour {i}", "duration": 5},
                            vars={"i": i}, repeat=1, output=f"{name}-{i}.mp4", estimated_usd=0.56)

with open_ledger(Path(state)) as ledger:
    print("registered", ledger.register(name, "d-" + name, jobs(), batch=1000), flush=True)
"""


def child(state: Path, *, name: str = "m", n: int = 20_000, cache: int = 1024, pauses: str = "",
          points: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), str(state), name, str(n), str(cache),
                             pauses, points], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    got = proc.stdout.readline()
    assert got == line + "\n", got + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")


def resume(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def killed_after_a_spill(state: Path, journal: Path | None = None) -> None:
    """A first registration killed once it has written pages into ledger.db: a hot journal is left."""
    proc = child(state, pauses="10000")
    try:
        wait_for(proc, "paused 10000")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        reap(proc)
    assert (journal or state / "ledger.db-journal").stat().st_size > 0


def mode(ledger: Any) -> str:
    return str(ledger._conn.db.conn.execute("PRAGMA journal_mode").fetchone()[0])


# ------------------------------------------------------------------ found by review (each failed before its fix)


def test_a_reader_during_a_large_first_registration_is_answered_without_waiting_for_it(tmp_path: Path) -> None:
    """Once the registration spills (past the 64 MiB bulk cache) it holds SQLite's EXCLUSIVE lock until its COMMIT.
    A reader (status, plan, export) used to wait for it and fail after the 10 s busy timeout; it is now told at
    once that a first registration is under way (``LedgerBusy``), and `status --watch` / `top` skip that refresh."""
    state = tmp_path / "state"
    proc = child(state, pauses="10000")
    answer: dict[str, object] = {}

    def status() -> None:
        try:
            with open_ledger(state, readonly=True) as reader:
                answer["total"] = reader.total()
        except Exception as exc:
            answer["error"] = exc

    try:
        wait_for(proc, "paused 10000")  # 10k jobs spilled into ledger.db, the stream paused
        reader = threading.Thread(target=status, daemon=True)
        reader.start()
        reader.join(timeout=2.0)
        blocked = reader.is_alive()
        resume(proc)  # let the registration finish (and the reader with it)
        wait_for(proc, "registered 20000")
        reader.join(timeout=30)
    finally:
        reap(proc)
    assert not blocked, "a read-only open waited for the first registration's COMMIT"
    assert set(answer) == {"error"} and isinstance(answer["error"], LedgerBusy), answer
    assert "planning the first jobs" in str(answer["error"]) and "again in a moment" in str(answer["error"])
    with open_ledger(state, readonly=True) as reader:
        assert reader.total() == 20_000


def test_a_reader_open_when_the_first_registration_is_killed_is_told_what_happened(tmp_path: Path) -> None:
    """A read-only connection opened while the registration runs in DELETE mode meets the hot journal at its next
    query: SQLITE_READONLY_ROLLBACK, once reported as "cannot write the ledger ... check that the directory is
    writable". It is now told that a runner stopped mid-registration and to run again; a new read reads on."""
    state = tmp_path / "state"
    proc = child(state, pauses="1000,10000")
    try:
        wait_for(proc, "paused 1000")  # DELETE mode, nothing spilled yet: the reader opens and reads
        with open_ledger(state, readonly=True) as reader:
            assert reader.total() == 0
            resume(proc)
            wait_for(proc, "paused 10000")  # spilled; the writer is killed with its journal hot
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            with pytest.raises(LedgerError, match=r"stopped while planning the first jobs .* Run the command again"):
                reader.total()
        with open_ledger(state, readonly=True) as again:
            assert again.total() == 0 and again.manifest_digest("m") is None
    finally:
        reap(proc)


def test_a_read_only_copy_racing_the_next_run_reads_a_state_that_existed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rolled_back_copy`` takes no lock: the next `runner run` may roll the real journal back AND write between
    its two copies. The old journal then rolled back only the pages the killed registration touched: the copy
    held the new manifest row without its jobs, a state that never was. A copy made while either file changed
    is now made again."""
    state = tmp_path / "state"
    killed_after_a_spill(state)
    copies: list[str] = []
    real_copy = shutil.copyfile

    def copyfile(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        out = real_copy(src, dst, *args, **kwargs)
        copies.append(Path(src).name)
        if len(copies) == 1:  # the journal copied, not yet the file: the next run comes in and plans m2
            proc = child(state, name="m2", n=10, cache=0)
            try:
                wait_for(proc, "registered 10")
                proc.wait(timeout=30)
            finally:
                reap(proc)
        return out

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with open_ledger(state, readonly=True) as reader:
        seen = (reader.total(), reader.manifest_digest("m2"))
    monkeypatch.undo()
    assert copies == ["ledger.db-journal", "ledger.db", "ledger.db"]  # made again, the journal gone by then
    assert seen in [(0, None), (10, "d-m2")], f"read {seen}: m2 registered without its jobs"


def test_a_symlinked_ledger_killed_mid_registration_is_an_unclean_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps the journal beside the link's target (``rolled_back_copy`` knows it); ``journal_left_behind``
    looked beside the link, so the next writable open of a large ledger skipped the full integrity check."""
    disk, state = tmp_path / "disk", tmp_path / "state"
    with open_ledger(disk):
        pass
    state.mkdir()
    (state / "ledger.db").symlink_to(disk / "ledger.db")
    killed_after_a_spill(state, journal=disk / "ledger.db-journal")
    assert not (state / "ledger.db-journal").exists()
    with open_ledger(state, readonly=True) as reader:  # safe: the copy is made from beside the target
        assert reader.total() == 0
    checked: list[object] = []
    real_check = connection.check_integrity

    def spy(raw: Any, file: Path, *, tables: Any) -> None:
        checked.append(tables)
        real_check(raw, file, tables=tables)

    monkeypatch.setattr(connection, "FULL_CHECK_MAX_BYTES", 0)  # a ledger above 128 MB
    monkeypatch.setattr(connection, "check_integrity", spy)
    with open_ledger(state) as ledger:
        assert ledger.total() == 0
    assert checked == [None], f"after a kill, the checks run were {checked} (None: the whole file)"


# ------------------------------------------------------------------ checked and safe


def test_a_kill_after_a_spill_is_read_through_a_rolled_back_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committed kill test stops before any spill: its journal is not hot yet (SQLite writes the journal's
    magic when it first syncs it), so a read-only open reads the file as it is. Here the copy path is taken."""
    state = tmp_path / "state"
    killed_after_a_spill(state)
    made: list[Path] = []
    real_copy = connection.rolled_back_copy

    def spy(file: Path, **options: Any) -> Any:
        made.append(file)
        return real_copy(file, **options)

    monkeypatch.setattr(connection, "rolled_back_copy", spy)
    left = (state / "ledger.db").read_bytes(), (state / "ledger.db-journal").read_bytes()
    with open_ledger(state, readonly=True) as reader:
        assert reader.total() == 0 and reader.manifest_digest("m") is None
    assert made == [state / "ledger.db"]
    assert ((state / "ledger.db").read_bytes(), (state / "ledger.db-journal").read_bytes()) == left
    with open_ledger(state) as ledger:
        assert not (state / "ledger.db-journal").exists() and mode(ledger) == "wal"
        assert ledger._conn.db.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert ledger.total() == 0


@pytest.mark.parametrize("point", ["before", "after"])
def test_a_kill_between_the_journal_mode_switches_leaves_a_ledger_every_open_reads(
    tmp_path: Path, point: str
) -> None:
    """Killed in DELETE mode with no transaction open (after the switch, before BEGIN; after COMMIT, before the
    switch back): no journal; a read-only open reads the file, the next writable open is back in WAL."""
    state = tmp_path / "state"
    proc = child(state, n=3000, cache=0, points=point)
    try:
        wait_for(proc, f"paused {point}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        reap(proc)
    planned = 3000 if point == "after" else 0
    assert not (state / "ledger.db-journal").exists()
    assert (state / "ledger.db").read_bytes()[18:20] == b"\x01\x01"  # left in rollback-journal mode
    with open_ledger(state, readonly=True) as reader:
        assert reader.total() == planned
    with open_ledger(state) as ledger:
        assert mode(ledger) == "wal" and ledger.total() == planned
        if not planned:
            assert ledger.register("m", "d", [], batch=10) == 0
        assert ledger.counts("m")[JobState.PENDING] == planned


def test_a_reader_open_across_the_return_to_wal_reads_on(tmp_path: Path) -> None:
    """A reader that opened in DELETE mode (holding no lock between queries) does not stop the switch back to WAL,
    and follows the file into WAL mode."""
    state = tmp_path / "state"
    proc = child(state, n=4000, cache=0, pauses="2000", points="after")
    try:
        wait_for(proc, "paused 2000")
        with open_ledger(state, readonly=True) as reader:
            assert reader.total() == 0
            resume(proc)
            wait_for(proc, "paused after")
            assert reader.total() == 4000
            resume(proc)
            wait_for(proc, "registered 4000")
            assert reader.total() == 4000 and mode(reader) == "wal"
        proc.wait(timeout=30)
        assert proc.returncode == 0
    finally:
        reap(proc)


def test_watch_skips_a_refresh_while_a_first_registration_holds_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status --watch` / `top` reopen the ledger at each refresh: a ``LedgerBusy`` skips that refresh (no frame,
    no exit), the next one shows the ledger."""
    from runner.service import watching

    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: m\nmodel: kling-v3.0-pro-t2v\nprompt: a harbour\n")
    state = tmp_path / "state"
    with open_ledger(state):
        pass
    real = watching.open_ledger_at
    opens: list[int] = []

    def busy_once(where: Any, *, readonly: bool) -> Any:
        opens.append(1)
        if len(opens) == 1:
            raise LedgerBusy("a runner is planning the first jobs")
        return real(where, readonly=readonly)

    monkeypatch.setattr(watching, "open_ledger_at", busy_once)
    frames: list[object] = []
    slept: list[float] = []
    assert watching.watch(manifest, state, every=1.5, show=frames.append, refreshes=1, sleep=slept.append) == 1
    assert len(opens) == 2 and len(frames) == 1 and slept == [1.5]
