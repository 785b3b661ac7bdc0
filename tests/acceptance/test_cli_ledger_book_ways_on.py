"""Each refusal of a new ledger by the book of this host's ledgers names a command that goes on with the ledger that
planned the jobs: pasted as printed, it must reach that ledger, and pay for nothing twice.

The simulator on a loopback port judges what was paid.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import psycopg

from test_cli_support import TWO_OTHER_JOBS, Provider, ProviderFactory, Result, provider, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

def _pasted(refused: Result, sim: Provider, *, cwd: Path) -> Result:
    """The command the refusal says to run, as an operator pastes it into a shell (the simulator's quick knobs
    added: they change no ledger)."""
    assert refused.code == 2 and "nothing was sent" in refused.stderr, str(refused)
    words = shlex.split(refused.stderr.split("run `", 1)[1].split("`", 1)[0])
    assert words[0] == "runner", words
    return run_cli(*words[1:], *sim.engine_args()[2:], cwd=cwd)


def test_a_postgres_ledger_in_its_own_schema_is_the_one_the_refusal_names(
        tmp_path: Path, pg_url: str, provider: ProviderFactory) -> None:
    sim = provider()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA trio")
    own = f"{pg_url}?options=-csearch_path%3Dtrio&password=hunter2"  # one database, a schema per batch (the
    # test server takes no password: it is only there to be kept out of the book)
    (tmp_path / "other").mkdir()
    other = write_manifest(tmp_path / "other", TWO_OTHER_JOBS, "other.yaml")
    assert run_cli("run", str(other), "--ledger", pg_url, "--state", str(tmp_path / "other" / "videos"),
                   *sim.engine_args(), cwd=tmp_path).code == 0  # another batch, in the database's public schema
    manifest = write_manifest(tmp_path)
    assert run_cli("run", str(manifest), "--ledger", own, "--state", str(tmp_path / "videos"), *sim.engine_args(),
                   cwd=tmp_path).code == 0
    assert sim.accepted() == 5
    # A cron line that lost its --ledger: refused; the command it names, pasted, goes on in the schema it ran in.
    refused = run_cli("run", str(manifest), *sim.engine_args(), cwd=tmp_path)
    pasted = _pasted(refused, sim, cwd=tmp_path)
    assert sim.accepted() == 5, f"the command the refusal named paid for the batch again: {pasted}"
    assert pasted.code == 0, str(pasted)
    assert b"hunter2" not in (Path(os.environ["XDG_STATE_HOME"]) / "kling-runner" / "ledgers.db").read_bytes()


def test_a_state_folder_with_an_odd_name_is_named_so_a_shell_reaches_it(tmp_path: Path,
                                                                         provider: ProviderFactory) -> None:
    sim = provider()
    odd = tmp_path / "it's a \"batch\"\nof $HOME" / "state"
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write_manifest(first)
    write_manifest(second)
    assert run_cli("run", "trio.yaml", "--state", str(odd), *sim.engine_args(), cwd=first).code == 0
    refused = run_cli("run", "trio.yaml", *sim.engine_args(), cwd=second)  # the manifest copied, run from its folder
    pasted = _pasted(refused, sim, cwd=second)
    assert pasted.code == 0 and sim.accepted() == 3, str(pasted)


def test_a_ledger_copied_before_it_sent_anything_runs_at_its_copy(tmp_path: Path, provider: ProviderFactory) -> None:
    """A first run that sent nothing (a budget of 0) armed its ledger on the book; `runner ledger copy` to a bigger
    disk. The copy, which has sent nothing either, was refused for the jobs its source planned, naming the source,
    and the source refused as copied, naming the copy: each named the other, and only --new-ledger went on."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, moved = tmp_path / "state", tmp_path / "big" / "state"
    assert run_cli("run", str(manifest), "--state", str(state), *sim.engine_args(), "--budget", "0",
                   cwd=tmp_path).code == 3
    copied = run_cli("ledger", "copy", str(state), str(moved), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    ran = run_cli("run", str(manifest), "--state", str(moved), *sim.engine_args(), cwd=tmp_path)
    assert ran.code == 0 and sim.accepted() == 3, str(ran)
