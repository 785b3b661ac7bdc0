"""A PostgreSQL ledger's home (:mod:`runner.ledger.postgres.home`): the server's system identifier, the database's and
the schema's OIDs, recorded at its first writable open; a writable open elsewhere is refused (a copy made by other
tools than ``runner ledger copy``), a read-only one warns; the same server at another address is the same home."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import psycopg
import pytest

from runner.errors import LedgerCloned
from runner.jobs import JobSpec
from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.postgres.home import HOME_META
from runner.service.copying import adopt_home, copy_ledger
from runner.service.outcome import EXIT_USAGE, exit_code_for
from runner.testing_pg import TempPostgres

SPEC = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "clip", "duration": 5}, vars={}, repeat=1,
                     output="c.mp4", estimated_usd=0.56)


def _home(url: str) -> dict[str, object] | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = %s", (HOME_META,)).fetchone()
    return None if row is None else dict(json.loads(row[0]))


def _oid(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT oid::int8 FROM pg_database WHERE datname = current_database()").fetchone()
    assert row is not None
    return int(row[0])


def _made(url: str, state: Path) -> None:
    with open_postgres_ledger(url, state) as ledger:
        ledger.register("m", "d", [SPEC])


def test_a_ledger_records_its_home_at_its_first_writable_open_and_an_older_ones_gets_one_silently(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with open_postgres_ledger(pg_url, tmp_path, readonly=True):
        pass  # no ledger yet, and nothing written by a read
    _made(pg_url, tmp_path)
    home = _home(pg_url)
    assert home is not None and home["database"] == _oid(pg_url) and home["system"], home
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a ledger an older runner made: no home
        conn.execute("DELETE FROM meta WHERE key = %s", (HOME_META,))
    with caplog.at_level(logging.WARNING, logger="runner.ledger"), open_postgres_ledger(pg_url, tmp_path, readonly=True):
        pass
    assert _home(pg_url) is None  # a read-only open writes nothing
    with caplog.at_level(logging.WARNING, logger="runner.ledger"), open_postgres_ledger(pg_url, tmp_path) as ledger:
        assert ledger.total() == 1
    assert _home(pg_url) == home and not caplog.records  # silently


def test_a_clone_is_refused_to_write_warned_of_to_read_and_adopted_by_reopen(
    pg_server: TempPostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    prod = pg_server.create_database()
    _made(prod, tmp_path / "a")
    staging = pg_server.create_database(f"{prod.rsplit('/', 1)[1]}_copy")
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:  # as `CREATE DATABASE … TEMPLATE`: a copy of the files
        admin.execute(f'DROP DATABASE "{staging.rsplit("/", 1)[1]}"')
        admin.execute(f'CREATE DATABASE "{staging.rsplit("/", 1)[1]}" TEMPLATE "{prod.rsplit("/", 1)[1]}"')
    with pytest.raises(LedgerCloned, match=r"was made at 127\.0\.0\.1:\d+/t\d+ schema public, not here") as refused:
        open_postgres_ledger(staging, tmp_path / "b")
    assert exit_code_for(refused.value) == EXIT_USAGE
    assert not (tmp_path / "b" / ".ledger-marks").exists()  # refused before the write marks are kept
    with caplog.at_level(logging.WARNING, logger="runner.ledger"), open_postgres_ledger(staging, tmp_path / "b",
                                                                                        readonly=True) as ledger:
        assert ledger.total() == 1
    assert "this command only reads it" in caplog.text
    assert _home(staging) == _home(prod)  # the warning wrote nothing
    with open_postgres_ledger(prod, tmp_path / "a") as ledger:  # the original is at home
        assert ledger.total() == 1

    assert adopt_home(staging) is not None  # `runner ledger reopen URL`: the original gone
    assert adopt_home(staging) is None  # at home now
    with open_postgres_ledger(staging, tmp_path / "b") as ledger:
        assert ledger.total() == 1
    assert (_home(staging) or {})["database"] == _oid(staging)


def test_a_ledger_copy_gets_a_home_of_its_own(pg_server: TempPostgres, tmp_path: Path) -> None:
    """`runner ledger copy` to PostgreSQL: another ledger, at home where it is made (never the source's home)."""
    prod = pg_server.create_database()
    _made(prod, tmp_path / "a")
    dst = pg_server.create_database()
    copy_ledger(prod, dst)
    home = _home(dst)
    assert home is not None and home["database"] == _oid(dst), home
    with open_postgres_ledger(dst, tmp_path / "b") as ledger:
        assert ledger.total() == 1
    back = tmp_path / "sqlite"  # through a SQLite ledger and back: no home rides along
    copy_ledger(dst, str(back))
    again = pg_server.create_database()
    copy_ledger(str(back), again)
    assert (_home(again) or {})["database"] == _oid(again)


def test_the_same_server_at_another_address_is_home_and_a_dump_on_another_server_is_not(tmp_path: Path) -> None:
    """A failover keeps the server's files (a streaming replica shares its primary's system identifier and catalogs):
    here the very data directory, started again on another port, is not a copy. A dump restored on a new server is,
    though the database there has the same OID (the first made on each server)."""
    with TempPostgres.start() as first, TempPostgres.start() as second:
        prod = first.create_database("prod")
        _made(prod, tmp_path / "a")
        first.halt()
        first.port += 1000
        first.resume()
        with open_postgres_ledger(first.url("prod"), tmp_path / "a") as ledger:
            assert ledger.total() == 1
        moved = second.create_database("prod")
        dump = subprocess.run([str(first.bindir / "pg_dump"), "-Fc", first.url("prod")], capture_output=True, check=True)
        subprocess.run([str(second.bindir / "pg_restore"), "--no-owner", "-d", moved], input=dump.stdout,
                       capture_output=True, check=True)
        assert _oid(moved) == _oid(first.url("prod"))  # OIDs alone would take it for the original
        with pytest.raises(LedgerCloned, match=rf"made at 127\.0\.0\.1:{first.port}/prod schema public, not here"):
            open_postgres_ledger(moved, tmp_path / "b")


def test_a_server_that_will_not_say_its_identifier_is_compared_on_the_oids(pg_server: TempPostgres, tmp_path: Path) -> None:
    """A managed server may revoke pg_control_system(): the ledger opens (no error), its home has no system
    identifier, and a template of it is still refused (another database OID)."""
    prod = pg_server.create_database()
    name = prod.rsplit("/", 1)[1]
    with psycopg.connect(prod, autocommit=True) as admin:
        admin.execute("DO $$ BEGIN CREATE ROLE plain LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute("GRANT ALL ON SCHEMA public TO plain")
        admin.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
    plain = prod.replace("runner@", "plain@")
    _made(plain, tmp_path / "a")
    home = _home(prod)
    assert home is not None and home["system"] is None and home["database"] == _oid(prod), home
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}_copy" TEMPLATE "{name}"')
    with pytest.raises(LedgerCloned, match=rf"made at 127\.0\.0\.1:\d+/{name} schema public, not here"):
        open_postgres_ledger(pg_server.url(f"{name}_copy").replace("runner@", "plain@"), tmp_path / "b")
    with open_postgres_ledger(prod, tmp_path / "a") as ledger:  # a role that may ask: the identifier is filled in
        assert ledger.total() == 1
    assert (_home(prod) or {})["system"]


def test_a_refusal_at_the_very_address_it_names_says_what_is_there_now(pg_server: TempPostgres, tmp_path: Path) -> None:
    """The DBA renames prod to prod_old and makes prod again from it (`CREATE DATABASE prod TEMPLATE prod_old`, a
    snapshot before a migration); or drops prod and restores last night's dump into a new prod. The hosts' URL reaches
    the new prod and is refused; the line said it was made at …/prod, not here (…/prod), "run with the URL of the
    ledger at …/prod": the very URL refused. It names the original's database as this server calls it now, or says
    it is gone."""
    prod = pg_server.create_database()
    name = prod.rsplit("/", 1)[1]
    _made(prod, tmp_path / "a")
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{name}_old"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{name}_old"')
    with pytest.raises(LedgerCloned, match=rf"made at 127\.0\.0\.1:\d+/{name} schema public \(its database is named"
                                           rf" {name}_old now\), not here \(127\.0\.0\.1:\d+/{name} schema public\)"):
        open_postgres_ledger(prod, tmp_path / "b")

    dump = subprocess.run([str(pg_server.bindir / "pg_dump"), "-Fc", prod], capture_output=True, check=True)
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:  # the copy dropped, restored from a dump anew
        admin.execute(f'DROP DATABASE "{name}_old"')
        admin.execute(f'DROP DATABASE "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([str(pg_server.bindir / "pg_restore"), "--no-owner", "-d", prod], input=dump.stdout,
                   capture_output=True, check=True)
    with pytest.raises(LedgerCloned, match=rf"made at 127\.0\.0\.1:\d+/{name} schema public, a database no longer on"
                                           r" this server \(dropped or renamed, and this one made in its place\), not"):
        open_postgres_ledger(prod, tmp_path / "b")
