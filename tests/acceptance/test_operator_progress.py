"""Progress on stderr while `runner run` works, as an operator sees it: plain lines, JSON lines, quiet, a TTY.

Each test runs the demo batch (7 jobs) against the built-in simulator with
0.2 s tasks, in a real subprocess, and reads what it wrote on stderr.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "manifests" / "demo.yaml"
FAST = ["--simulate", "--sim-task-seconds", "0.2", "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.2"]


def runner(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def run_demo(state: Path, *flags: str, every: str = "0.2") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNNER_PROGRESS_SECONDS": every, "PYTHONUNBUFFERED": "1"}
    env.pop("NOVITA_API_KEY", None)
    return subprocess.run(
        runner(*flags, "run", str(DEMO), "--state", str(state), *FAST),
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=90, check=False,
    )


def test_plain_status_lines_without_a_tty(tmp_path: Path) -> None:
    """Without a TTY, stderr gets a status line every few seconds and a final line with how the run ended."""
    done = run_demo(tmp_path / "state")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # stdout is for results only
    lines = [line for line in done.stderr.splitlines() if " done " in line and "/7" in line]
    assert len(lines) >= 2, done.stderr  # at least one periodic line, then the final one
    assert all("ETA" in line and "USD spent (estimate)" in line for line in lines)
    assert lines[-1].endswith("[complete]") and "done 7/7" in lines[-1]
    assert "\x1b[" not in done.stderr  # no terminal escapes in a log file


def test_log_json_writes_one_json_object_per_event(tmp_path: Path) -> None:
    """--log-json: every event is one JSON line: 7 submitted, 7 done, status records and a final summary."""
    done = run_demo(tmp_path / "state", "--log-json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    events = [r.get("event") for r in records]
    assert events.count("submitted") == 7 and events.count("done") == 7
    assert "status" in events
    assert events[-1] == "summary"
    summary = records[-1]
    assert summary["counts"]["done"] == 7 and summary["total"] == 7 and summary["reason"] == "complete"
    assert summary["estimated_spent_usd"] == 4.2
    for record in records:
        assert {"ts", "level", "logger", "message"} <= record.keys()
    submitted = next(r for r in records if r.get("event") == "submitted")
    assert len(submitted["key"]) == 20 and submitted["task_id"] and submitted["manifest"] == "demo-timelapses"
    # Lines that are not JSON come from the CLI itself (start-up notes), never from progress.
    others = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert not any(" done " in line for line in others), others


def test_quiet_prints_no_progress(tmp_path: Path) -> None:
    """-q: no status lines and no events, and the run still completes."""
    done = run_demo(tmp_path / "state", "-q")
    assert done.returncode == 0, done.stderr
    assert "done 7/7" not in done.stderr and "ETA" not in done.stderr and "{" not in done.stderr


def test_a_tty_gets_the_rich_live_display(tmp_path: Path) -> None:
    """On a terminal, stderr carries the live panel: title, states, finished count, and the final line."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "110", "LINES": "40"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        runner("run", str(DEMO), "--state", str(tmp_path / "state"), *FAST),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, env=env, cwd=ROOT,
    )
    os.close(secondary)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert proc.wait(timeout=90) == 0
    reader.join(timeout=10)
    os.close(primary)
    assert proc.stdout is not None
    proc.stdout.close()
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "runner · demo-timelapses" in screen
    assert "7/7 finished" in screen
    assert "in doubt" in screen and "ETA" in screen
    assert "\x1b[" in screen  # styled: a real live display, not plain lines
    assert "[complete]" in screen
