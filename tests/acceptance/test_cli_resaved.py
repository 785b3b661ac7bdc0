"""A manifest's value file re-saved by another tool between two runs of one batch (a spreadsheet, an editor, git).

What the provider would receive is unchanged, so the next run must find every job already paid for and pay for none
again; where the re-save does change what is asked (a prompt's text), the run says how many paid jobs that leaves
behind before it sends anything. Each test drives `runner` subprocesses against one simulator on loopback and counts
the tasks it accepted (paid for).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.jobs import JobState

from test_cli_support import ProviderFactory, counts, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

BULK = """\
name: bulk
defaults:
  duration: 3
prompt: "{prompt}"
matrix:
  rows: {file: prompts.csv}
output: "{id}.mp4"
"""
JOB_USD = 3 * 0.112  # one 3 s job (estimate)
ROWS = [("007", "a cat on a roof"), ("008", "a dog in the rain"), ("009", "an owl at dusk")]


def _first_run(tmp_path: Path, sim_args: list[str]) -> tuple[Path, Path]:
    """BULK with ROWS as a plain CSV (LF, nothing quoted), run to its budget: two of the three jobs paid."""
    (tmp_path / "prompts.csv").write_bytes(
        ("id,prompt\n" + "".join(f"{i},{p}\n" for i, p in ROWS)).encode())
    manifest = write_manifest(tmp_path, BULK, "bulk.yaml")
    state = tmp_path / "state"
    first = run_cli(*run_args("run", str(manifest), state, *sim_args, "--budget", str(2.5 * JOB_USD)), cwd=tmp_path)
    assert first.code == 3 and "budget" in first.stderr, str(first)
    assert counts(state, "bulk") == {"done": 2, "pending": 1}
    return manifest, state


def test_an_excel_resave_of_a_csv_pays_for_no_job_again(tmp_path: Path, provider: ProviderFactory) -> None:
    """Excel's "CSV UTF-8" writes a BOM, CRLF, every field quoted, an empty column after the last and empty rows
    (",,,") after the last row: the values are the same, but the empty rows were refused as jobs with an empty prompt
    (and the empty column as "rows column '' is not a valid variable name"), whatever the operator did: Excel writes
    them again at every save. They are blank: read as nothing, as a blank line is."""
    sim = provider()
    manifest, state = _first_run(tmp_path, sim.engine_args())
    assert sim.accepted() == 2
    excel = '"id","prompt",\r\n' + "".join(f'"{i}","{p}",\r\n' for i, p in ROWS) + ",,\r\n,,\r\n"
    (tmp_path / "prompts.csv").write_bytes(b"\xef\xbb\xbf" + excel.encode())
    plan = run_cli("plan", str(manifest), "--state", str(state), cwd=tmp_path)
    assert plan.code == 0 and "would submit 1 job(s)" in plan.stdout, str(plan)
    assert "already paid for" not in plan.stdout, str(plan)
    second = run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert second.code == 0, str(second)
    assert sim.accepted() == 3 and sim.max_per_body() == 1
    assert counts(state, "bulk") == {"done": 3}


@pytest.mark.parametrize("resaved", [
    'id,prompt\r\n007,a cat on a roof\r\n008,"a dog\r\nin the rain"\r\n009,an owl at dusk\r\n',
    'id,prompt\n007,a cat on a\u00a0roof\n008,"a dog\nin the rain"\n009,an owl at dusk\n',
], ids=["crlf-inside-a-cell", "no-break-space"])
def test_a_resave_that_changes_a_prompt_is_said_before_anything_is_sent(tmp_path: Path, provider: ProviderFactory,
                                                                        resaved: str) -> None:
    """A re-save that changes a value a job sends (git's autocrlf turning the line break inside a quoted cell into
    CRLF; a no-break space a word processor typed) asks for another video: a new job, paid for, while the paid one stays.
    `plan` said only "pending 2, done 1" and the run paid without a word (the orphan showed in `status` after); now
    both say, before anything is sent, how many paid jobs the edit leaves behind and how to keep them."""
    sim = provider()
    first = [*ROWS[:1], ("008", "a dog\nin the rain"), *ROWS[2:]]
    (tmp_path / "prompts.csv").write_bytes(
        ("id,prompt\n" + "".join(f'{i},"{p}"\n' for i, p in first)).encode())
    manifest = write_manifest(tmp_path, BULK, "bulk.yaml")
    state = tmp_path / "state"
    args = sim.engine_args("--concurrency", "1")
    run = run_cli(*run_args("run", str(manifest), state, *args, "--budget", str(2.5 * JOB_USD)), cwd=tmp_path)
    assert run.code == 3 and counts(state, "bulk") == {"done": 2, "pending": 1}, str(run)
    (tmp_path / "prompts.csv").write_bytes(resaved.encode())
    plan = run_cli("plan", str(manifest), "--state", str(state), cwd=tmp_path)
    assert plan.code == 0 and "would submit 2 job(s)" in plan.stdout, str(plan)
    said = "1 job(s) of bulk already paid for (1 done) would no longer be in it as edited"
    assert said in plan.stdout and "put the manifest and its files back" in plan.stdout, str(plan)
    assert sim.accepted() == 2
    second = run_cli(*run_args("run", str(manifest), state, *args), cwd=tmp_path)
    assert second.code == 0, str(second)
    told = second.stderr.find("1 job(s) of bulk already paid for (1 done) are no longer in it as edited")
    assert 0 <= told < second.stderr.find("account balance"), str(second)  # before the run sends anything
    assert sim.accepted() == 4  # the changed job is paid for: the operator was told


def test_plan_of_an_edit_with_too_many_paid_jobs_to_count_says_it_did_not_count(
        tmp_path: Path, provider: ProviderFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting what an edit leaves behind reads each paid job of the manifest: for a million that doubled `plan`'s
    time and tripled its memory (10.6 → 23.5 s CPU, 52 → 162 MB, an edited 1M-job batch all done). Above
    COUNTED_UP_TO `plan` does not count them and says that the run will, before it sends; the run still does."""
    from runner.service import left_behind
    from runner.service.planning import plan

    sim = provider()
    manifest, state = _first_run(tmp_path, sim.engine_args())
    (tmp_path / "prompts.csv").write_bytes(
        ("id,prompt\n" + "".join(f"{i},{p}!\n" for i, p in ROWS)).encode())  # every prompt changed: 2 paid left
    assert plan(manifest, state).left_behind == {JobState.DONE: 2}
    from runner.cli import inspect  # (its own name for the bound, in the line it prints)

    monkeypatch.setattr(left_behind, "COUNTED_UP_TO", 1)
    monkeypatch.setattr(inspect, "COUNTED_UP_TO", 1)
    assert plan(manifest, state).left_behind is None
    shown = CliRunner().invoke(main, ["plan", str(manifest), "--state", str(state)])
    assert "lists more than 1 paid jobs: plan does not count whether" in shown.output, shown.output
    assert "`runner run` counts them and says so before it sends anything" in shown.output, shown.output
    as_json = CliRunner().invoke(main, ["plan", str(manifest), "--state", str(state), "--json"])
    assert '"paid_jobs_left_behind": null' in as_json.output, as_json.output
    said = run_cli("plan", str(manifest), "--state", str(state), "--json", cwd=tmp_path)
    assert said.code == 0 and '"paid_jobs_left_behind": {"done": 2}' in said.stdout, str(said)
    second = run_cli(*run_args("run", str(manifest), state, *sim.engine_args()), cwd=tmp_path)
    assert "2 job(s) of bulk already paid for (2 done) are no longer in it as edited" in second.stderr, str(second)
