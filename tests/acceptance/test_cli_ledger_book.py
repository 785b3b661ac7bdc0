"""A new ledger does not pay again for jobs another ledger of this host planned (the book of this host's ledgers,
runner/ledger/book.py and runner/service/ledger_book.py).

A state folder missing altogether holds no trace a ledger's open could see: the manifest copied to another folder,
the state folder moved to a bigger disk under an unchanged cron line, `cp -a` then `mv` aside, `rm -rf state` — each
run made a new ledger and paid for the whole batch again. The simulator on a loopback port (not --simulate, which
pays nothing and is not booked) judges by its own books what was paid.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from runner.ledger.rescue import CRASH_ENV

from test_cli_support import Provider, ProviderFactory, Result, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def _run(manifest: Path, sim: Provider, *extra: str, cwd: Path) -> Result:
    """``runner run MANIFEST`` with the state folder found from the manifest (no --state), as a cron line has it."""
    return run_cli("run", str(manifest), *sim.engine_args(), *extra, cwd=cwd)


def _refused(result: Result, sim: Provider, paid: int) -> str:
    assert result.code == 2, str(result)
    assert "nothing was sent" in result.stderr, str(result)
    assert sim.accepted() == paid, "a refused run paid"
    return result.stderr


def test_the_manifest_copied_to_another_folder_is_refused_and_each_way_on_works(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    a, b = write_manifest(first), write_manifest(second)
    assert _run(a, sim, cwd=tmp_path).code == 0
    assert sim.accepted() == 3
    said = _refused(_run(b, sim, cwd=tmp_path), sim, 3)  # was: "created a new ledger", 3 more tasks paid
    assert f"planned in the ledger at {first / 'state'} (batch trio; last run " in said, said
    assert "may have paid for them" in said, said
    assert f"run `runner run {b} --state {first / 'state'} --base-url {sim.base_url}`" in said, said
    assert "add --new-ledger to pay for them again on purpose" in said, said
    # The way it names: that ledger, which pays for nothing twice.
    assert run_cli(*run_args("run", b, first / "state", *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 3
    # Or pay again on purpose, once; the next run of that copy is not refused again.
    assert _run(b, sim, "--new-ledger", cwd=tmp_path).code == 0
    assert sim.accepted() == 6
    assert _run(b, sim, cwd=tmp_path).code == 0
    assert sim.accepted() == 6


def test_a_state_folder_moved_away_is_refused_at_its_old_path_and_named_once_run_there(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, big = tmp_path / "state", tmp_path / "big" / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    big.parent.mkdir()
    state.rename(big)  # `mv state /big/state`, not `cp -a`
    said = _refused(run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path), sim, 3)
    assert f"the ledger that was at {state}" in said and "is not there anymore" in said, said
    assert "run with --state NEW-FOLDER" in said and "--new-ledger pays for every job again" in said, said
    assert run_cli(*run_args("run", manifest, big, *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 3
    # The unchanged cron line again: the book now knows where that ledger went.
    said = _refused(run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path), sim, 3)
    assert f"--state {big} --base-url" in said, said


def test_a_copy_then_the_original_moved_aside_is_refused_at_the_old_path(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, big = tmp_path / "state", tmp_path / "big" / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    big.parent.mkdir()
    shutil.copytree(state, big, symlinks=True)  # cp -a
    state.rename(tmp_path / "state.bak")
    said = _refused(run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path), sim, 3)
    assert "is not there anymore" in said, said


def test_a_state_folder_deleted_is_refused_and_new_ledger_pays_again_once(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    shutil.rmtree(state)
    said = _refused(run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path), sim, 3)
    assert "if you deleted it, --new-ledger pays for every job again" in said, said
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args(), "--new-ledger"), cwd=tmp_path).code == 0
    assert sim.accepted() == 6
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 6


def test_a_first_run_killed_after_its_first_write_ahead_is_on_the_book(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, moved = tmp_path / "state", tmp_path / "moved"
    killed = run_cli(*run_args("run", manifest, state, *sim.engine_args("--concurrency", "3")), cwd=tmp_path,
                     env={CRASH_ENV: "write-ahead-group"})
    assert killed.code == -signal.SIGKILL, f"the crash point was not reached: {killed}"
    state.rename(moved)
    said = _refused(run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path), sim, 0)
    assert "is not there anymore" in said, said


def test_another_provider_and_simulated_runs_are_not_refused(tmp_path: Path, provider: ProviderFactory) -> None:
    sim, other = provider(), provider()
    manifest = write_manifest(tmp_path)
    assert run_cli(*run_args("run", manifest, tmp_path / "one", *sim.engine_args()), cwd=tmp_path).code == 0
    # Another provider (its own tasks, its own bill): not the same videos paid twice.
    assert run_cli(*run_args("run", manifest, tmp_path / "two", *other.engine_args()), cwd=tmp_path).code == 0
    assert (sim.accepted(), other.accepted()) == (3, 3)
    book = Path(os.environ["XDG_STATE_HOME"]) / "kling-runner" / "ledgers.db"
    before = book.read_bytes()
    # --simulate pays for nothing: neither checked nor written.
    simulated = run_cli(*run_args("run", manifest, tmp_path / "three", "--simulate", "--sim-task-seconds", "0"),
                        cwd=tmp_path, key=None)
    assert simulated.code == 0, str(simulated)
    assert book.read_bytes() == before


def test_a_book_that_cannot_be_written_warns_once_and_the_run_goes_on(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    home = Path(os.environ["XDG_STATE_HOME"])
    home.mkdir(parents=True)
    (home / "kling-runner").write_text("not a folder\n")  # (a read-only ~/.local is the same to the book)
    ran = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert ran.code == 0, str(ran)
    assert ran.stderr.count(str(home / "kling-runner" / "ledgers.db")) == 1, str(ran)
    assert "It goes on (the book is a safety net" in ran.stderr, str(ran)
    assert sim.accepted() == 3


def test_a_cron_line_that_lost_its_postgres_ledger_is_refused(tmp_path: Path, pg_url: str,
                                                              provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    videos = tmp_path / "videos"
    assert run_cli("run", str(manifest), "--ledger", pg_url, "--state", str(videos), *sim.engine_args(),
                   cwd=tmp_path).code == 0
    # without --ledger, the state folder found from the manifest (the videos' folder has its own guard: its files)
    said = _refused(_run(manifest, sim, cwd=tmp_path), sim, 3)
    assert "planned in the PostgreSQL ledger" in said and f"--ledger {pg_url} --base-url" in said, said
