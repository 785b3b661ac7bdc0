"""Host marks written by runner 95d41b3 (no ``at`` line: where the ledger was) read by this runner.

A fleet is upgraded one host at a time and sometimes rolled back, so the state directory of a PostgreSQL ledger holds
marks of both versions at once. An older runner's mark cannot say where its ledger was: it never refuses an open as a
ledger made again (it may name a second ledger sharing the state directory), and it still refuses a ledger restored
to before a commit it saw. The mark below is a real one of 95d41b3 (its runner killed mid-batch), its names replaced.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerLostCommits
from runner.jobs import JobSpec
from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.postgres.hostmarks import FOLDER, ID_META
from runner.testing_pg import TempPostgres

#: A mark as runner 95d41b3 wrote it: ledger, conn, host and pid, the mark and its time; no ``at <place>`` line.
MARK_95D41B3 = ("runner postgres write mark 1\nledger {ledger}\nconn {conn}\nhost vm 21114\n"
                "mark {mark:020d} 0001796474055.697\n")


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _old_mark(url: str, state: Path, *, ahead: int, conn: str = "d9dad74a9a50480ebb558247b64f5101") -> Path:
    """A 95d41b3 mark of the ledger at ``url`` ``ahead`` commits past what its row holds (its server lost them)."""
    with psycopg.connect(url) as db:
        row = db.execute("SELECT value FROM meta WHERE key = %s", (ID_META,)).fetchone()
        held = db.execute("SELECT mark FROM write_marks WHERE conn = %s", (conn,)).fetchone()
    assert row is not None
    ledger = str(row[0])
    file = state / FOLDER / f"{ledger[:12]}-{conn}.mark"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(MARK_95D41B3.format(ledger=ledger, conn=conn, mark=(held[0] if held else 0) + ahead))
    return file


def test_a_95d41b3_mark_of_commits_the_server_lost_is_refused(pg_url: str, tmp_path: Path) -> None:
    """An old runner on this host committed its write 90, then the database came back from a backup without it."""
    state = tmp_path / "state"
    with open_postgres_ledger(pg_url, state) as ledger:
        ledger.register("m", "d", [spec(1)])
    _old_mark(pg_url, state, ahead=90)
    with pytest.raises(LedgerLostCommits, match=r"lost changes this state directory saw committed"):
        open_postgres_ledger(pg_url, state)


def test_a_95d41b3_mark_of_another_ledger_in_the_state_directory_refuses_nothing(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path
) -> None:
    """Two ledgers (two databases) share one state directory; the other one's marks are an old runner's, young and
    unknown here: they are not read as a ledger made again at this one's place (the old mark names no place)."""
    state = tmp_path / "state"
    other = pg_server.create_database()
    with open_postgres_ledger(other, state) as ledger:
        ledger.register("m", "d", [spec(2)])
    for mark in (state / FOLDER).glob("*.mark"):
        mark.unlink()  # the other ledger's marks are an old runner's only
    _old_mark(other, state, ahead=0, conn="a" * 32)
    _old_mark(other, state, ahead=3, conn="b" * 32)
    for _ in range(2):
        with open_postgres_ledger(pg_url, state) as ledger:
            ledger.register("m", "d", [spec(1)])
            assert ledger.total() == 1
    assert len(list((state / FOLDER).glob("*.mark"))) >= 2  # the other ledger's old marks are left to it


def test_a_95d41b3_copy_put_back_in_its_place_is_refused_saying_so(pg_url: str, tmp_path: Path) -> None:
    """`runner ledger copy` of 95d41b3 records no lineage (meta write_marks_copied): its copy of a ledger this
    runner used, put back in its place, cannot be told from a ledger made again, and is refused (exit 2, nothing
    sent). The refusal names that case and its way on, not only a backup to restore (there is none to find)."""
    from runner.ledger.postgres.hostmarks import COPIED_META
    from runner.ledger.postgres.transfer import copy_ledger

    state, side = tmp_path / "state", tmp_path / "side"
    with open_postgres_ledger(pg_url, state) as ledger:
        ledger.register("m", "d", [spec(1)])
    copy_ledger(pg_url, str(side))
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DROP SCHEMA public CASCADE")
        admin.execute("CREATE SCHEMA public")
    copy_ledger(str(side), pg_url)
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("DELETE FROM meta WHERE key = %s", (COPIED_META,))  # as the copy of 95d41b3 left it
    with pytest.raises(LedgerLostCommits) as refused:
        open_postgres_ledger(pg_url, state)
    said = str(refused.value)
    assert "not the one this state directory saw there" in said and "copy an older runner took of it" in said, said
    assert f"mv {state / FOLDER}" in said, said
