"""A state folder moved twice under a cron line that followed it once: the refusal must not send the operator to the
plan-only ledger the first refused run left at the old place.

Found by the operator torture (bench/crashmoves.py, 2026-12-06): `mv state big1` → the unchanged cron line
(`--state state`) is refused by the book, and leaves at `state/` a new ledger holding only its plan; the cron line is
fixed to `--state big1` and runs there; `mv big1 big2` → the cron line (`--state big1`) is refused — nothing paid —
and was refused by the check of the state folders found from the manifest, which named `state/` ("the jobs of 'trio'
are in the ledger at …/state … Pass --state state to go on with the first"): a ledger that has sent nothing, whose
run was refused in turn. Nothing was paid twice, but the operator was sent to the wrong folder first. That check now
passes over a ledger that has sent nothing and that no run holds; the book's refusal names where the ledger was.
"""

from __future__ import annotations

from pathlib import Path

from test_cli_support import Provider, ProviderFactory, Result, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def _run(manifest: Path, state: Path, sim: Provider, cwd: Path) -> Result:
    return run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=cwd)


def test_a_state_folder_moved_twice_is_not_refused_toward_the_plan_a_refused_run_left(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, big1, big2 = tmp_path / "state", tmp_path / "big1", tmp_path / "big2"
    assert _run(manifest, state, sim, tmp_path).code == 0
    assert sim.accepted() == 3
    state.rename(big1)
    first = _run(manifest, state, sim, tmp_path)  # the unchanged cron line: refused by the book, a plan left there
    assert first.code == 2 and "is not there anymore" in first.stderr, str(first)
    assert _run(manifest, big1, sim, tmp_path).code == 0  # the cron line follows the state
    big1.rename(big2)
    second = _run(manifest, big1, sim, tmp_path)
    assert second.code == 2 and "nothing was sent" in second.stderr, str(second)
    assert sim.accepted() == 3
    followed = _run(manifest, state, sim, tmp_path)  # as it says: refused in turn, by the book (nothing paid)
    assert followed.code == 2 and "has sent nothing yet" in followed.stderr and sim.accepted() == 3, str(followed)
    # It may not know big2, but it must not name state/, which holds only the plan of a run it refused.
    assert f"in the ledger at {state}," not in second.stderr, str(second)
