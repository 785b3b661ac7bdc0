"""Review decisions made while a run holds the ledger (a real `runner run` against the simulator): queued in
``<state>/review-queue.jsonl`` and saved as the run ends or by the next command that opens the ledger for writing —
never lost, never applied twice, never applied to a clip generated again since; a journal that cannot be written
says so. The run here looks at the queue only once a day (``RUNNER_REVIEW_SAVE_EVERY``), so what it saves while it
runs (test_review_live.py) does not come first."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.ledger import open_ledger
from runner.ledger.rescue import CRASH_ENV

from test_cli_support import (
    THREE_JOBS,
    ProviderFactory,
    clean_env,
    cli_argv,
    done_trio,
    finish_cli,
    provider,
    run_args,
    run_cli,
    start_cli,
    status,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

QUEUE_NAME = "review-queue.jsonl"  # the journal's name (runner.ledger.review_queue.QUEUE_NAME)


@pytest.fixture
def during_run(tmp_path: Path, provider: ProviderFactory) -> Iterator[tuple[Path, Path, dict[str, str],
                                                                             subprocess.Popen[str]]]:
    """The trio done, then a run of one more job whose task takes ten minutes: it holds the ledger throughout (and
    does not save the queue while it runs)."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    slow = provider(task_seconds=600.0)
    write_manifest(tmp_path, THREE_JOBS.replace("[cat, dog, owl]", "[cat, dog, owl, fox]"))
    run = start_cli(*run_args("run", manifest, state, *slow.engine_args(), "--allow-provider-change"), cwd=tmp_path,
                    env={"RUNNER_REVIEW_SAVE_EVERY": "86400"})
    try:
        wait_for(lambda: slow.accepted() >= 1, what="the run's paid task")
        yield manifest, state, keys, run
    finally:
        if run.poll() is None:
            run.kill()
        finish_cli(run)


def _stop(run: subprocess.Popen[str]) -> str:
    run.send_signal(signal.SIGINT)
    stderr = finish_cli(run)
    assert run.returncode == 3, stderr  # stopped: its task still running
    return stderr


def _serve(tmp_path: Path, manifest: Path, state: Path, *, max_file_bytes: int | None = None
           ) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(cli_argv("review", str(manifest), "--state", str(state), "--port", "0",
                                     max_file_bytes=max_file_bytes),
                            cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": "sk-test"}), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), proc.communicate()[1]
    page = httpx.get(url, timeout=30).text
    token = page.split('name="review-token" content="')[1].split('"')[0]
    return proc, url, token


def _decide(url: str, token: str, key: str, decision: str, sample: int = 0) -> httpx.Response:
    return httpx.post(url + "api/review", json={"key": key, "decision": decision, "reason": "melting paws",
                                                "sample": sample},
                      headers={"X-Review-Token": token}, timeout=30)


def _reviews(state: Path, keys: dict[str, str]) -> dict[str, tuple[str | None, int]]:
    with open_ledger(state, readonly=True) as ledger:
        found = {}
        for animal, key in keys.items():
            job = ledger.get(key)
            assert job is not None
            found[animal] = (job.review, len(ledger.rejections(key)))
        return found


def test_a_page_decision_during_a_run_is_saved_when_it_ends_once_even_after_a_crash(
        tmp_path: Path, during_run: tuple[Path, Path, dict[str, str], subprocess.Popen[str]]) -> None:
    manifest, state, keys, run = during_run
    review, url, token = _serve(tmp_path, manifest, state)
    try:
        queued = _decide(url, token, keys["cat"], "reject")
        assert queued.status_code == 202, queued.text
        assert queued.json()["message"] == "reject queued: the run saves it within seconds"
        assert _decide(url, token, keys["dog"], "accept").status_code == 202
        page = httpx.get(url, timeout=30).text  # loaded again: each card says its decision waits for the run
        assert page.count("queued: the run saves it within seconds") == 2 and "reject queued: the run" in page, page
        assert status(tmp_path, manifest, state)["queued_decisions"] == 2
        assert run.poll() is None  # the run went on, untouched
        run.kill()  # killed: it saves nothing as it ends
        finish_cli(run)
        # the next writer (here `runner accept owl`) applies them; killed after their commit, before the journal goes
        killed = run_cli("accept", str(manifest), keys["owl"], "--state", str(state), cwd=tmp_path,
                         env={CRASH_ENV: "review-queue-applied"})
        assert killed.code == -signal.SIGKILL, str(killed)
        assert (state / QUEUE_NAME).exists()
        assert _reviews(state, keys) == {"cat": ("rejected", 1), "dog": ("accepted", 0), "owl": (None, 0)}
        again = _decide(url, token, keys["owl"], "accept")  # the run is over: saved at once, the queue applied again
        assert again.status_code == 200, again.text
        assert "queued: the run saves" not in httpx.get(url, timeout=30).text
    finally:
        review.terminate()
        review.communicate(timeout=20)
    assert not (state / QUEUE_NAME).exists()
    assert _reviews(state, keys) == {"cat": ("rejected", 1), "dog": ("accepted", 0), "owl": ("accepted", 0)}
    assert status(tmp_path, manifest, state)["queued_decisions"] == 0


def test_a_queued_decision_on_a_clip_generated_again_since_is_dropped(
        tmp_path: Path, during_run: tuple[Path, Path, dict[str, str], subprocess.Popen[str]]) -> None:
    manifest, state, keys, run = during_run
    queued = run_cli("accept", str(manifest), keys["cat"], "--state", str(state), cwd=tmp_path)
    assert queued.code == 0 and "1 accept(s) queued" in queued.stdout, str(queued)
    _stop(run)
    with open_ledger(state) as ledger:  # sample 0 accepted as queued; then rejected and regenerated: sample 1
        job = ledger.get(keys["cat"])
        assert job is not None and job.review == "accepted"
        assert ledger.reject(keys["cat"], reason="on second thought")
        assert ledger.requeue_rejected(keys["cat"], kept_path="")
    (state / QUEUE_NAME).write_text(json.dumps({"key": keys["cat"], "manifest": "trio", "decision": "reject",
                                                "reason": "late", "sample": 0, "at": 1.0}) + "\n")
    with open_ledger(state) as ledger:
        job = ledger.get(keys["cat"])
        assert job is not None and job.sample == 1 and job.review is None
        assert [r.reason for r in ledger.rejections(keys["cat"])] == ["on second thought"]
    assert not (state / QUEUE_NAME).exists()


def test_runner_reject_during_a_run_queues_and_exits_0(
        tmp_path: Path, during_run: tuple[Path, Path, dict[str, str], subprocess.Popen[str]]) -> None:
    manifest, state, keys, run = during_run
    result = run_cli("reject", str(manifest), keys["owl"][:10], "--reason", "blurry", "--state", str(state),
                     cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "1 reject(s) queued in trio: a run is writing the ledger" in result.stdout
    assert _reviews(state, {"owl": keys["owl"]}) == {"owl": (None, 0)}
    stopped = _stop(run)  # the run saves it as it ends: no other command needed
    assert "1 review decision(s) made during the run saved" in stopped, stopped
    assert "review decision" not in stopped.replace("1 review decision(s) made during the run saved", ""), stopped
    assert not (state / QUEUE_NAME).exists()
    with open_ledger(state, readonly=True) as ledger:
        [rejection] = ledger.rejections(keys["owl"])
        assert rejection.reason == "blurry" and rejection.sample == 0


def test_a_full_disk_refuses_to_queue_and_says_so(
        tmp_path: Path, during_run: tuple[Path, Path, dict[str, str], subprocess.Popen[str]]) -> None:
    manifest, state, keys, run = during_run
    full = run_cli("reject", str(manifest), keys["owl"], "--reason", "blurry", "--state", str(state), cwd=tmp_path,
                   max_file_bytes=40)
    assert full.code == 6, str(full)
    assert "could not be queued" in full.stderr and "1 reject(s) queued" not in full.stdout, str(full)
    review, url, token = _serve(tmp_path, manifest, state, max_file_bytes=40)
    try:
        refused = _decide(url, token, keys["dog"], "reject")
        assert refused.status_code == 507, refused.text
        assert "not saved" in refused.json()["error"] and "could not be queued" in refused.json()["error"]
    finally:
        review.terminate()
        review.communicate(timeout=20)
    ok = run_cli("accept", str(manifest), keys["cat"], "--state", str(state), cwd=tmp_path)  # room again
    assert ok.code == 0 and "1 accept(s) queued" in ok.stdout, str(ok)
    _stop(run)
    with open_ledger(state):  # the torn lines the full disk left are skipped; only the queued one is saved
        pass
    assert _reviews(state, keys) == {"cat": ("accepted", 0), "dog": (None, 0), "owl": (None, 0)}
