"""`runner plan --deadline WHEN` as a user types it: the verdict line, `--json`'s `forecast.deadline`, exit 0 (a
warning), and exit 2 for a deadline that is unreadable or past. WHEN is a duration here, so nothing depends on
the wall clock (tests/unit/test_plan_deadline.py reads ISO and HH:MM against an injected now)."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_support import run_cli, write_manifest

BATCH = "name: night\nprompt: 'clip {n}'\nmatrix:\n  n: {file: n.txt}\n"


def _manifest(tmp_path: Path) -> Path:
    (tmp_path / "n.txt").write_text("".join(f"{n}\n" for n in range(500)))
    return write_manifest(tmp_path, BATCH, name="night.yaml")


def test_plan_says_how_many_jobs_a_deadline_leaves_and_what_binds(tmp_path: Path) -> None:
    """500 jobs of the default 5-minute task at concurrency 4 miss an 8-hour deadline: 384 by then, exit 0."""
    manifest, state = _manifest(tmp_path), tmp_path / "state"
    result = run_cli("plan", str(manifest), "--state", str(state), "--deadline", "8h", cwd=tmp_path, key=None)
    assert result.code == 0, str(result)
    assert ("warning: that does not finish by the deadline" in result.stdout
            and "(in 8h00m): about 384 of 500 job(s) would be done by then; concurrency (4) binds: raise --concurrency"
            in result.stdout), str(result)
    roomy = run_cli("plan", str(manifest), "--state", str(state), "--deadline", "8h", "--concurrency", "40",
                    "--rpm", "none", "--json", cwd=tmp_path, key=None)
    assert roomy.code == 0, str(roomy)
    deadline = json.loads(roomy.stdout)["forecast"]["deadline"]
    assert (deadline["seconds"], deadline["fits"], deadline["jobs_by_deadline"]) == (28800.0, True, 500)


def test_a_past_or_unreadable_deadline_is_one_line_and_exit_2(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    for when, words in (("2020-01-01T07:00", "is in the past"), ("tonight", "give an ISO time")):
        result = run_cli("plan", str(manifest), "--state", str(tmp_path / "state"), "--deadline", when, cwd=tmp_path,
                         key=None)
        assert result.code == 2 and f"--deadline '{when}'" in result.stderr and words in result.stderr, str(result)
        assert result.stdout == "", "nothing planned"
