"""A PostgreSQL ledger copied by a DBA's own tools — ``CREATE DATABASE staging TEMPLATE prod``, ``pg_dump | pg_restore``
— carries every table, its meta too: the same ledger name, the same write marks, so the hosts' marks
(:mod:`runner.ledger.postgres.hostmarks`) found nothing missing. A host whose cron line was pointed at the copy read
every job the other hosts sent since as pending, and they read its jobs so: each paid for the other's.

Now the ledger keeps its home (the server's system identifier, the database's and the schema's OIDs, as PostgreSQL
tells them) and a writable open anywhere else is refused, exit 2, nothing sent; ``runner ledger reopen URL`` adopts
the new place on purpose (the original gone). Real ``runner`` subprocesses, the simulator on loopback, a throwaway
PostgreSQL server."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import psycopg
import pytest

from runner.testing_pg import TempPostgres
from tests.acceptance.test_cli_support import SIX_JOBS, Provider, ProviderFactory, provider, run_cli, write_manifest

__all__ = ["provider"]

SIX = SIX_JOBS.replace("concurrency: 1", "concurrency: 6")
TWO = SIX.replace("[cat, dog, owl]", "[cat]")


def _submit(manifest: Path, url: str, state: Path, sim: Provider, cwd: Path) -> tuple[int, str]:
    done = run_cli("submit", str(manifest), "--ledger", url, "--state", str(state), *sim.engine_args(), cwd=cwd)
    return done.code, str(done)


def _clone(server: TempPostgres, prod: str, how: str) -> str:
    """``staging``, a copy of the database ``prod`` made by ``how``: its URL."""
    name = prod.rsplit("/", 1)[1]
    with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}_staging"' + (f' TEMPLATE "{name}"' if how == "template" else ""))
    staging = server.url(f"{name}_staging")
    if how == "dump":  # the DBA's tools: a custom-format dump restored into a new database
        dump = subprocess.run([str(server.bindir / "pg_dump"), "-Fc", prod], capture_output=True, check=True)
        subprocess.run([str(server.bindir / "pg_restore"), "--no-owner", "-d", staging], input=dump.stdout,
                       capture_output=True, check=True)
    return staging


def _sent_then_cloned(tmp_path: Path, server: TempPostgres, sim: Provider, how: str) -> tuple[Path, str, str]:
    """Host A's run on prod sends two jobs; the DBA clones prod (``how``); the manifest grows to six: (manifest, prod,
    the clone)."""
    prod = server.create_database()
    manifest = write_manifest(tmp_path, TWO, name="six.yaml")
    code, said = _submit(manifest, prod, tmp_path / "a", sim, tmp_path)
    assert code == 3 and sim.accepted() == 2, said
    staging = _clone(server, prod, how)
    write_manifest(tmp_path, SIX, name="six.yaml")
    return manifest, prod, staging


@pytest.mark.parametrize("how", ["template", "dump"])
def test_a_ledger_cloned_by_the_dbas_tools_is_refused_at_the_clone_and_nothing_is_paid_twice(
    tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory, how: str,
) -> None:
    """Host A sends two jobs on prod; the DBA clones prod; the manifest grows to six. Host B's cron runs on the clone,
    host A's on prod: each sent the four new jobs (12 tasks for 6 jobs). Now the clone is refused before anything is
    sent, host A's run on prod sends the four once."""
    if how == "dump" and not (pg_server.bindir / "pg_dump").exists():
        pytest.skip("no pg_dump beside this PostgreSQL server")
    sim = provider(task_seconds=3600)
    manifest, prod, staging = _sent_then_cloned(tmp_path, pg_server, sim, how)

    code, said = _submit(manifest, staging, tmp_path / "b", sim, tmp_path)  # host B, its cron line repointed
    assert sim.accepted() == 2, f"the clone sent {sim.accepted() - 2} job(s)\n{said}"
    assert code == 2, said
    assert f"{pg_server.host}:{pg_server.port}/{prod.rsplit('/', 1)[1]}" in said, said  # where it was made
    assert "each pay for the other's jobs" in said and "Nothing was sent" in said, said
    assert f"runner ledger reopen {staging}" in said, said

    code, said = _submit(manifest, prod, tmp_path / "a", sim, tmp_path)  # host A goes on on prod
    assert code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, said
    code, said = _submit(manifest, staging, tmp_path / "b", sim, tmp_path)  # still refused: prod is its home
    assert code == 2 and sim.accepted() == 6, said


def test_the_way_on_the_refusal_prints_works_as_typed_and_a_clone_is_not_copied_on(
    tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory,
) -> None:
    """The original dropped (its hosts pointed at the clone): `runner ledger reopen URL`, as the refusal prints it,
    makes the clone the ledger's home; runs there go on, each job paid once. Before that, `runner ledger copy` of the
    clone is refused as a run is (a copy of it would pay for what the original's runs send): nothing copied."""
    sim = provider(task_seconds=3600)
    manifest, prod, staging = _sent_then_cloned(tmp_path, pg_server, sim, "template")
    code, said = _submit(manifest, staging, tmp_path / "b", sim, tmp_path)
    assert code == 2 and sim.accepted() == 2, said

    other = pg_server.create_database()
    copied = run_cli("ledger", "copy", staging, other, cwd=tmp_path)
    assert copied.code == 2 and "not copied: " in copied.stderr and "Nothing was copied" in copied.stderr, str(copied)
    with psycopg.connect(other, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('jobs')").fetchone() == (None,), "nothing was written to the copy"

    with psycopg.connect(pg_server.url("postgres"), autocommit=True) as admin:  # the DBA drops the original
        admin.execute(f'DROP DATABASE "{prod.rsplit("/", 1)[1]}"')
    line = next(part for part in said.split("`") if part.startswith("runner ledger reopen "))
    reopened = run_cli(*shlex.split(line)[1:], cwd=tmp_path)
    assert reopened.code == 0 and "home now" in reopened.stderr, str(reopened)
    code, said = _submit(manifest, staging, tmp_path / "b", sim, tmp_path)
    assert code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, said


def test_a_clone_the_original_went_on_after_is_not_reopened_by_the_refusals_words_but_copied_anew(
    tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory,
) -> None:
    """A migration: the DBA clones prod while host A's cron line still runs on it; A sends four more jobs there, then
    its cron line is stopped (prod "will never be run again") and host B is pointed at the clone. The refusal said to
    `runner ledger reopen` the clone in that case: followed, B's run read A's four jobs pending and paid for them again
    (10 tasks for 6 jobs). It now says when the clone's last commit was and, for an original run after it, the way
    that pays once: `runner ledger copy` of the original into an empty database (and the original refused after);
    `runner ledger reopen` typed anyway is refused while the original, on this server, holds later commits."""
    sim = provider(task_seconds=3600)
    manifest, prod, staging = _sent_then_cloned(tmp_path, pg_server, sim, "template")
    code, said = _submit(manifest, prod, tmp_path / "a", sim, tmp_path)  # host A's cron, after the clone
    assert code == 3 and sim.accepted() == 6, said

    code, said = _submit(manifest, staging, tmp_path / "b", sim, tmp_path)  # host B, pointed at the clone
    assert code == 2 and sim.accepted() == 6, said
    with psycopg.connect(staging, autocommit=True) as conn:
        row = conn.execute("SELECT to_char(to_timestamp(max(at)) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
                           " FROM write_marks").fetchone()
    assert row is not None and f"after the last commit this copy holds ({row[0]} UTC" in " ".join(said.split()), said
    assert "would be paid again: copy that ledger with `runner ledger copy` into an empty database" in " ".join(
        said.split()), said

    line = next(part for part in said.split("`") if part.startswith("runner ledger reopen "))
    reopened = run_cli(*shlex.split(line)[1:], cwd=tmp_path)  # typed anyway: prod went on after the clone's commits
    assert reopened.code == 2 and "not reopened: " in reopened.stderr and "Nothing was changed" in reopened.stderr, str(
        reopened)
    code, said = _submit(manifest, staging, tmp_path / "b", sim, tmp_path)
    assert code == 2 and sim.accepted() == 6, f"the clone paid again for {sim.accepted() - 6} job(s)\n{said}"

    fresh = pg_server.create_database()  # as the words say: prod's runs used it after, so it is copied anew
    line = next(part for part in reopened.stderr.split("`") if part.startswith("runner ledger copy "))
    assert line == f"runner ledger copy {prod} URL", reopened.stderr
    copied = run_cli("ledger", "copy", prod, fresh, "--state", str(tmp_path / "a"), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    code, said = _submit(manifest, fresh, tmp_path / "b", sim, tmp_path)
    assert code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, said
    code, said = _submit(manifest, prod, tmp_path / "a", sim, tmp_path)  # a cron line left on prod: refused
    assert code == 2 and sim.accepted() == 6, said


def test_the_reopen_line_of_a_ledger_in_its_own_schema_reopens_that_ledger(
    tmp_path: Path, pg_server: TempPostgres, provider: ProviderFactory,
) -> None:
    """A ledger in a schema of its own, chosen in the URL (`?options=-csearch_path%3Dledger`, as docs/postgres.md
    says), cloned by TEMPLATE and the original dropped: the refusal's `runner ledger reopen URL` printed the URL without
    its parameters, so pasted it looked for a ledger in public (none: an error; or another ledger, adopted) and runs
    on the clone stayed refused. The line keeps them (not the password): pasted, it reopens that ledger."""
    sim = provider(task_seconds=3600)
    base = pg_server.create_database()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA ledger")
    prod = base + "?options=-csearch_path%3Dledger"
    manifest = write_manifest(tmp_path, TWO, name="six.yaml")
    code, said = _submit(manifest, prod, tmp_path / "a", sim, tmp_path)
    assert code == 3 and sim.accepted() == 2, said
    staging = _clone(pg_server, base, "template") + "?options=-csearch_path%3Dledger"
    with psycopg.connect(pg_server.url("postgres"), autocommit=True) as admin:  # the DBA drops the original
        admin.execute(f'DROP DATABASE "{base.rsplit("/", 1)[1]}"')
    write_manifest(tmp_path, SIX, name="six.yaml")
    code, said = _submit(manifest, staging, tmp_path / "b", sim, tmp_path)
    assert code == 2 and sim.accepted() == 2, said

    line = next(part for part in said.split("`") if part.startswith("runner ledger reopen "))
    assert shlex.split(line)[3] == staging, line
    reopened = run_cli(*shlex.split(line)[1:], cwd=tmp_path)
    assert reopened.code == 0 and "home now" in reopened.stderr, str(reopened)
    code, said = _submit(manifest, staging, tmp_path / "b", sim, tmp_path)
    assert code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, said
