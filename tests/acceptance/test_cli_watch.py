"""`runner status --watch SECONDS --json` (and `runner top`) beside a real run against the simulator on a
loopback port: one JSON object per refresh whose counts follow the run, read from the ledger without its
lock (the run holds it and finishes normally), and Ctrl-C ends the watch with exit 0."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.simulator import SimConfig, Simulator, SimulatorThread
from runner.simulator.config import ManualClock

from test_cli_support import run_args, run_cli, start_cli, wait_for, write_manifest


@pytest.fixture
def held_sim() -> Iterator[tuple[SimulatorThread, ManualClock]]:
    """A simulator whose tasks finish only when the test moves its clock."""
    clock = ManualClock(1_000.0)
    server = SimulatorThread(Simulator(SimConfig(task_seconds=10.0), clock=clock)).start()
    yield server, clock
    server.stop()


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            found.put(line)

    threading.Thread(target=read, daemon=True).start()
    return found


def _interrupt(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C: the exit code; stderr must hold no traceback."""
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "Traceback" not in err and (code == 0 or not err), err
    return code


def _close(proc: subprocess.Popen[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _next(lines: queue.Queue[str], what: str) -> dict[str, Any]:
    try:
        frame: dict[str, Any] = json.loads(lines.get(timeout=60))
    except queue.Empty:
        raise AssertionError(f"no JSON line from the watch while waiting for {what}") from None
    return frame


def test_status_watch_json_follows_a_live_run_and_ctrl_c_exits_0(
        tmp_path: Path, held_sim: tuple[SimulatorThread, ManualClock]) -> None:
    server, clock = held_sim
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    run = start_cli(*run_args("run", manifest, state, "--base-url", server.base_url, "--rpm", "none",
                              "--poll-rpm", "none", "--poll-interval", "0.05"), cwd=tmp_path)
    watcher: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: (state / "ledger.db").exists(), timeout=60, what="the run's ledger")
        watcher = start_cli("status", str(manifest), "--state", str(state), "--watch", "0.2", "--json", cwd=tmp_path)
        lines = _lines(watcher)
        frame = _next(lines, "the first frame")
        while frame["counts"]["running"] < 3:  # the run submits its 3 jobs; nothing finishes yet
            assert frame["counts"]["done"] == 0, frame
            frame = _next(lines, "3 running")
        assert {"at", "total", "counts", "rejected", "done_per_minute", "outstanding", "eta_s",
                "estimated_spent_usd"} <= set(frame), frame
        assert frame["outstanding"] == 3 and frame["estimated_spent_usd"] > 0, frame
        clock.advance(11.0)  # the provider finishes the tasks: the run downloads them and ends
        _out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err  # the watch never took the run's lock
        while frame["counts"]["done"] < 3:
            later = _next(lines, "3 done")
            assert later["at"] >= frame["at"], (frame, later)
            frame = later
        assert frame["outstanding"] == 0 and frame["eta_s"] == 0, frame
        assert _interrupt(watcher) == 0
    finally:
        for proc in (run, watcher):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc is not None:
                _close(proc)


def test_top_prints_a_plain_line_per_refresh_off_a_terminal(tmp_path: Path) -> None:
    """`runner top` off a terminal: one readable line per refresh; a ledger that is not there is exit 2."""
    manifest = write_manifest(tmp_path)
    missing = run_cli("top", str(manifest), "--state", str(tmp_path / "state"), "--every", "0.1", cwd=tmp_path)
    assert missing.code == 2 and "no ledger" in missing.stderr, str(missing)
    from runner.jobs import JobSpec
    from runner.ledger import open_ledger

    with open_ledger(tmp_path / "state") as ledger:
        ledger.register("trio", "d", [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "p", "duration": 3},
                                                    vars={}, repeat=1, output="p.mp4", estimated_usd=0.3)])
    proc = start_cli("top", str(manifest), "--state", str(tmp_path / "state"), "--every", "0.1", cwd=tmp_path)
    lines = _lines(proc)
    try:
        first, second = (lines.get(timeout=60) for _ in range(2))
        assert _interrupt(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _close(proc)
    assert "trio: 0/1 done, 1 pending" in first and "ETA ?" in first, first
    assert "trio: 0/1 done, 1 pending, done/min 0.0" in second, second  # measured since the first refresh
