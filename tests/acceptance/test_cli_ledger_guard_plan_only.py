"""A ledger that holds only a plan at ``state/`` is passed over by the check of the state folders found from the
manifest only when the book of this host's ledgers stands behind that: it is readable and one of its armed ledgers
planned the manifest's jobs (that ledger is the one to name, and the book names it). Otherwise the plan is the only
trace of the batch: a book that cannot be read (a read-only or broken ~/.local, a runner stopped with Ctrl-Z holding
it), or another user's or host's book, would let the batch be paid for elsewhere and then again where it was planned.
"""

from __future__ import annotations

import os
from pathlib import Path

from test_cli_support import ProviderFactory, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def test_a_plan_only_ledger_still_refuses_a_second_ledger_when_the_book_cannot_be_read(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    home = Path(os.environ["XDG_STATE_HOME"])
    home.mkdir(parents=True)
    (home / "kling-runner").write_text("not a folder\n")  # the book unusable: its guard only warns
    planned = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args("--budget", "0")), cwd=tmp_path)
    assert planned.code == 3 and sim.accepted() == 0, str(planned)  # planned at state/, nothing sent
    elsewhere = run_cli(*run_args("run", manifest, tmp_path / "other", *sim.engine_args()), cwd=tmp_path)
    assert elsewhere.code == 2 and sim.accepted() == 0, str(elsewhere)
    assert f"in the ledger at {tmp_path / 'state'}" in elsewhere.stderr, str(elsewhere)
    # The way it names pays once.
    assert run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path).code == 0
    assert sim.accepted() == 3


def test_a_plan_only_ledger_still_refuses_a_second_ledger_another_book_cannot_see(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    planned = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args("--budget", "0")), cwd=tmp_path)
    assert planned.code == 3 and sim.accepted() == 0, str(planned)
    # Another user (or host) on the same folder: a book of its own, which never saw state/.
    theirs = {"XDG_STATE_HOME": str(tmp_path / "their-home")}
    elsewhere = run_cli(*run_args("run", manifest, tmp_path / "other", *sim.engine_args()), cwd=tmp_path, env=theirs)
    assert elsewhere.code == 2 and sim.accepted() == 0, str(elsewhere)
    assert f"in the ledger at {tmp_path / 'state'}" in elsewhere.stderr, str(elsewhere)
