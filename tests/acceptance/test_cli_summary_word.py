"""The word a run's summary ends on (`… [complete]`) agrees with its exit code: `complete` only for exit 0.

`collect` that left pending jobs ended `[complete]` and exited 3 (its next line explained why); a run whose
jobs failed ended `[complete]` with exit 1, and one holding jobs in doubt `[complete]` with exit 4.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_cli_support import ProviderFactory, Result, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def _word(result: Result) -> str:
    """The summary's last word: the one `[…]` ending a plain line on stderr (a cron log's)."""
    ends = [m.group(1) for line in result.stderr.splitlines() if (m := re.search(r"\[([^\]]+)\]$", line.strip()))]
    assert len(ends) == 1, str(result)
    return ends[0]


def test_a_complete_run_says_complete(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    done = run_cli(*run_args("run", write_manifest(tmp_path), tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0 and _word(done) == "complete", str(done)


def test_a_run_whose_jobs_failed_does_not_say_complete(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(p_task_failed=1.0)
    result = run_cli(*run_args("run", write_manifest(tmp_path), tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert result.code == 1 and _word(result) == "finished: 3 failed", str(result)


def test_a_run_holding_jobs_in_doubt_does_not_say_complete(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(p_drop=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    first = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 4 and _word(first) == "fatal", str(first)  # stopped: 3 submits in a row unanswered
    sim.sim.configure(p_drop=0.0)
    held = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)  # nothing else to do
    assert held.code == 4 and _word(held) == "held: 3 in doubt", str(held)


def test_collect_leaving_pending_jobs_does_not_say_complete(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    submitted = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "2")), cwd=tmp_path)
    assert submitted.code == 3 and _word(submitted) == "submitted", str(submitted)
    collected = run_cli(*run_args("collect", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert collected.code == 3 and _word(collected) == "collected: 1 pending", str(collected)
    as_json = run_cli("--log-json", *run_args("collect", manifest, state, *sim.engine_args()), cwd=tmp_path)
    summary = [json.loads(line) for line in as_json.stderr.splitlines() if '"summary"' in line]
    assert as_json.code == 3 and len(summary) == 1, str(as_json)
    assert summary[0]["message"].endswith("[collected: 1 pending]") and summary[0]["reason"] == "complete", summary


def test_submit_of_a_batch_already_done_says_complete_and_exits_0(tmp_path: Path, provider: ProviderFactory) -> None:
    """A cron `submit` tick after the last video: it said `[submitted]` and exit 3 ('stopped with work
    outstanding') with nothing outstanding; now the batch's own answer, 0 and `complete`."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    again = run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and _word(again) == "complete", str(again)


def test_a_run_ending_on_an_error_after_collecting_does_not_say_complete(tmp_path: Path,
                                                                         provider: ProviderFactory) -> None:
    """A state directory whose outputs/ cannot take a video (a file in its way): no job is sent, the run collects what
    it can and exits 6 — and its summary ended `[complete]` with 0 of 3 done, the word a cron log is read for (the
    newcomer's walk, 2026-12-06). It ends `[fatal]`, then the error, as every run stopped by an error."""
    sim = provider()
    state = tmp_path / "state"
    state.mkdir()
    (state / "outputs").write_text("not a folder\n", encoding="utf-8")
    result = run_cli(*run_args("run", write_manifest(tmp_path), state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 6 and _word(result) == "fatal", str(result)
    assert "were not sent" in result.stderr.splitlines()[-1] and sim.sim.stats()["accepted_total"] == 0, str(result)
