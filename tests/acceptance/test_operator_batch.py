"""The morning after: status, ls, show, the HF export and the HTML gallery of a real demo run.

One module-wide batch: the demo manifest (7 jobs) run by a `runner run` subprocess
against a simulator process whose seeded dice make 2 tasks fail and 1 submit
answer a gateway page after creating the task (so 4 done, 2 failed, 1 in doubt).
The inspection commands then run through click's CliRunner.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runner.cli import main
from runner.jobs import JobState

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "manifests" / "demo.yaml"
ARTIFACTS = ROOT / "artifacts"
# Seed 26 with these knobs draws: 2 tasks FAILED, 1 gateway page after creating the task, 4 fine.
SIM_CONFIG = {"seed": 26, "p_task_failed": 0.3, "p_gateway": 0.15, "gateway_created_fraction": 1.0}
EXPECTED = {"done": 4, "failed": 2, "in_doubt": 1}
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--virtual-time-budget=5000"]

Invoke = Callable[..., Result]


@dataclass(frozen=True)
class Batch:
    state: Path
    exit_code: int
    stderr: str


def _start_simulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.simulator", "--port", "0", "--task-seconds", "0.2",
         "--config", json.dumps(SIM_CONFIG)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], 20)
    line = proc.stderr.readline() if ready else ""
    if not line.startswith("simulator listening on "):
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, line.removeprefix("simulator listening on ").strip()


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    state = tmp_path_factory.mktemp("operator") / "state"
    sim, base_url = _start_simulator()
    try:
        env = {**os.environ, "NOVITA_API_KEY": "sk-operator-test", "RUNNER_PROGRESS_SECONDS": "60"}
        done = subprocess.run(
            [sys.executable, "-m", "runner", "run", str(DEMO), "--state", str(state), "--base-url", base_url,
             "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.2"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=90, check=False,
        )
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=10)
        assert sim.stderr is not None
        sim.stderr.close()
    yield Batch(state=state, exit_code=done.returncode, stderr=done.stderr)


@pytest.fixture
def cli() -> Iterator[Invoke]:
    """`runner ARGS…` in-process; the signal handlers and log set-up it installs are undone afterwards."""
    signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger("runner")
    saved = (root.handlers[:], root.level, root.propagate)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    yield invoke
    for sig, handler in signals.items():
        signal.signal(sig, handler)
    root.handlers[:], root.level, root.propagate = saved


def ls_json(cli: Invoke, batch: Batch, *flags: str) -> list[dict[str, Any]]:
    result = cli("ls", DEMO, "--state-dir", batch.state, "--json", *flags)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_batch_ends_holding_the_in_doubt_job(batch: Batch) -> None:
    """The run exits 4: one submit's answer was a gateway page, so that job is held, not paid again."""
    assert batch.exit_code == 4, batch.stderr
    assert "IN DOUBT" in batch.stderr


# ------------------------------------------------------------------ status

def test_status_json_keeps_its_contract(cli: Invoke, batch: Batch) -> None:
    """status --json starts with {"total": N, "counts": {every state}}; extra keys only add."""
    result = cli("status", DEMO, "--state", batch.state, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data)[:2] == ["total", "counts"]
    assert data["total"] == 7
    assert set(data["counts"]) == {str(s) for s in JobState}
    assert {k: data["counts"][k] for k in EXPECTED} == EXPECTED
    assert data["estimated_spent_usd"] == pytest.approx(0.56 * 6 + 0.84)  # every created task, in doubt included
    assert data["oldest_running"] is None and data["earliest_url_expiry"] is None
    assert data["last_run"]["exit_code"] == 4


def test_status_prints_a_readable_table(cli: Invoke, batch: Batch) -> None:
    """status: one row per state with its count, then spend, oldest running task, URL expiry and hints."""
    result = cli("status", DEMO, "--state", batch.state)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("demo-timelapses: 7 job(s)")
    for state, n in EXPECTED.items():
        assert re.search(rf"^\s+{state}\s+{n}\s", text, re.MULTILINE), (state, text)
    assert re.search(r"estimated spend so far\s+4\.20 USD", text)
    assert "oldest running task" in text and "earliest result URL expiry" in text
    assert "IN DOUBT" in text and "runner retry" in text and "--only failed,lost" in text


# ---------------------------------------------------------------- ls, show

def test_ls_filters_by_state(cli: Invoke, batch: Batch) -> None:
    """ls --state failed lists exactly the failed jobs, with the provider's reason."""
    result = cli("ls", DEMO, "--state-dir", batch.state, "--state", "failed")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["key", "state", "vars", "output", "task_id", "error"]
    assert len(lines) == 1 + EXPECTED["failed"]
    assert all(" failed " in line and "city=" in line for line in lines[1:])
    failed = ls_json(cli, batch, "--state", "failed")
    assert all(row["state"] == "failed" and row["error"] for row in failed)
    problems = ls_json(cli, batch, "--state", "problems")
    assert sorted(str(row["state"]) for row in problems) == ["failed", "failed", "in_doubt"]
    assert len(ls_json(cli, batch)) == 7


def test_show_finds_a_job_by_key_prefix_and_lists_its_attempts(cli: Invoke, batch: Batch) -> None:
    """show KEYPREFIX prints the job's request, files, spend and each attempt with its outcome."""
    job = ls_json(cli, batch, "--state", "done")[0]
    result = cli("show", str(job["key"])[:8], "--state", batch.state)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"job {job['key']}")
    assert str(job["task_id"]) in text and "A cinematic timelapse of" in text
    assert "provider time" in text and "queued" in text
    assert re.search(r"^attempts \(1\):", text, re.MULTILINE)
    assert re.search(r"^\s+1\s+submit\s+.*accepted\s+200\s", text, re.MULTILINE)


def test_show_json_of_an_in_doubt_job_records_the_ambiguous_submit(cli: Invoke, batch: Batch) -> None:
    """show --json: the in-doubt job's attempt says 'ambiguous' with the gateway's status."""
    key = str(ls_json(cli, batch, "--state", "in_doubt")[0]["key"])
    result = cli("show", key, "--state", batch.state, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["state"] == "in_doubt" and data["task_id"] is None
    (attempt,) = data["attempts"]
    assert attempt["kind"] == "submit" and attempt["outcome"] == "ambiguous"
    assert attempt["http_status"] in (502, 504)


def test_show_accepts_a_task_id(cli: Invoke, batch: Batch) -> None:
    """A task_id copied from the provider's console finds its job too."""
    job = ls_json(cli, batch, "--state", "failed")[0]
    result = cli("show", str(job["task_id"]), "--state", batch.state)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"job {job['key']}")
    assert re.search(r"^\s+2\s+poll\s+.*\sfailed\s", result.stdout, re.MULTILINE)  # attempt 1 was the submit
    assert re.search(rf"^\s+error\s+{re.escape(str(job['error']))}$", result.stdout, re.MULTILINE)


# ----------------------------------------------------------------- export

def test_export_hf_writes_a_videofolder_datasets_can_load(cli: Invoke, batch: Batch, tmp_path: Path) -> None:
    """export --format hf: the done videos beside metadata.jsonl rows carrying file_name, vars, request, sha256, timings, cost."""
    dest = tmp_path / "hf"
    result = cli("export", DEMO, "--state", batch.state, "--format", "hf", "--to", dest)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (dest / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == EXPECTED["done"]
    assert len({tuple(row) for row in rows}) == 1  # one schema: every row has the same columns, in order
    videos = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.mp4"))
    assert videos == sorted(str(row["file_name"]) for row in rows)
    done = {str(row["key"]): row for row in ls_json(cli, batch, "--state", "done")}
    for row in rows:
        video = dest / row["file_name"]
        assert hashlib.sha256(video.read_bytes()).hexdigest() == row["sha256"]
        assert video.stat().st_nlink >= 2  # hard-linked, not copied
        source = done[row["key"]]
        assert row["file_name"] == source["output"] and row["task_id"] == source["task_id"]
        assert row["city"] == source["vars"]["city"] and row["time"] == source["vars"]["time"]
        for field in ("prompt", "negative_prompt", "duration", "cfg_scale", "aspect_ratio", "sound"):
            assert row[field] == source["request"][field]
        assert row["estimated_usd"] in (0.56, 0.84)
        assert isinstance(row["submit_time_ms"], int) and row["generation_seconds"] >= 0
    assert "left out (no video): 2 failed, 1 in_doubt" in result.stderr
    again = cli("export", DEMO, "--state", batch.state, "--format", "hf", "--to", dest)
    assert again.exit_code == 0 and (dest / "metadata.jsonl").read_text().count("\n") == len(rows)


def test_export_jsonl_and_csv_keep_one_record_per_job(cli: Invoke, batch: Batch, tmp_path: Path) -> None:
    """The jsonl and csv formats are unchanged: one record per job, every state."""
    jsonl = cli("export", DEMO, "--state", batch.state)
    assert jsonl.exit_code == 0
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(rows) == 7 and {"key", "state", "task_id", "request", "vars", "sha256"} <= rows[0].keys()
    out = tmp_path / "demo.csv"
    assert cli("export", DEMO, "--state", batch.state, "--format", "csv", "--to", out).exit_code == 0
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 7


def test_export_hf_needs_a_folder(cli: Invoke, batch: Batch) -> None:
    """--format hf without --to is a usage error in one line (exit 2), not a traceback."""
    result = cli("export", DEMO, "--state", batch.state, "--format", "hf")
    assert result.exit_code == 2
    assert result.stderr.strip() == "runner: error: --format hf writes a folder: say where with --to DIR"


# ---------------------------------------------------------------- gallery

def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browse(browser: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([browser, *CHROME_FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=90, check=False)


def test_report_renders_in_headless_chromium(cli: Invoke, batch: Batch, tmp_path: Path) -> None:
    """report: a static page whose <video>s load and play in Chromium, grouped by city, failures with reasons."""
    dest = tmp_path / "report"
    result = cli("report", DEMO, "--state", batch.state, "--to", dest)
    assert result.exit_code == 0, result.output
    index = dest / "index.html"
    assert result.stdout.strip() == str(index)
    page = index.read_text()
    assert page.count("<video ") == EXPECTED["done"]
    assert "http://" not in page and "https://" not in page  # nothing fetched from anywhere
    browser = _chromium()
    if browser is None:
        if os.environ.get("RUNNER_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed but RUNNER_REQUIRE_CHROMIUM is set (CI installs it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "gallery.png"
    shot.unlink(missing_ok=True)
    taken = _browse(browser, index.as_uri(), tmp_path / "profile-shot", "--window-size=1280,2400",
                    f"--screenshot={shot}")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a real picture, not a blank page
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = _browse(browser, index.as_uri(), tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    figures = re.findall(r"<figure [^>]*>", html)
    assert len(figures) == 7
    loaded = [f for f in figures if 'data-video="loaded"' in f]
    assert len(loaded) == EXPECTED["done"], figures  # each video decoded its first frame (after the JS ran)
    assert not [f for f in figures if 'data-video="error"' in f]
    for city in ("Tokyo", "Lagos", "Lima", "Reykjavik"):
        assert re.search(rf'<span class="var">city =</span> {city}', html), city
        assert f"A cinematic timelapse of {city} at" in html
    assert html.count('class="reason"') >= EXPECTED["failed"] + EXPECTED["in_doubt"]
    assert "Failed, lost and in-doubt jobs (3)" in html
    assert "Estimated spend so far: <b>4.20 USD</b>" in html
