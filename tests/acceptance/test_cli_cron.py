"""The README's unattended use done as cron does it: ``env -i PATH=/usr/bin:/bin SHELL=/bin/sh`` (no HOME, LANG or
TERM), stdin from /dev/null, stderr to a file or to the pipe cron mails, the user's home as the working directory,
``umask 077``; ticks that overlap a run still going, and one that meets a run stopped with Ctrl-Z or SIGSTOP.

Real subprocesses and signals against the simulator on loopback, whose books say what was paid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from test_cli_support import (
    KEY,
    ProviderFactory,
    Result,
    counts,
    finish_cli,
    provider,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def _cron_env() -> dict[str, str]:
    """What cron gives a job (and nothing of the test's own environment but the tree under test)."""
    # (RUNNER_SCRATCH_STATE: the test's folders are under /tmp, which a reboot may empty: the run would say so)
    env = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "NOVITA_API_KEY": KEY, "RUNNER_SCRATCH_STATE": "1"}
    for name in ("PYTHONPATH", "XDG_STATE_HOME"):  # the tree under test; the test's own book of ledgers
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def cron_tick(*args: str, home: Path) -> Result:
    """One cron tick of ``runner *args``: cron's environment, stdin /dev/null, cwd the user's home, umask 077."""
    proc = subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=home, env=_cron_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False, preexec_fn=lambda: os.umask(0o077),
    )
    result = Result(list(args), proc.returncode, proc.stdout, proc.stderr, 0.0)
    assert "Traceback" not in result.stderr, str(result)
    return result


def _holding(state: Path, pid: int) -> bool:
    """The run ``pid`` holds the ledger's lock (it wrote its name in the lock file, and no longer ``creating``)."""
    try:
        line = (state / "ledger.lock").read_text(encoding="utf-8")
    except OSError:
        return False
    return line.startswith(f"{pid} ") and not line.rstrip().endswith("creating")


def _a_run_holding_the_ledger(tmp_path: Path, provider: ProviderFactory) -> tuple[Path, Path, Path, subprocess.Popen[str], int]:
    """A run whose three tasks take ten minutes, started from another folder: (home, manifest, state, its process,
    the tasks it paid for)."""
    sim = provider(task_seconds=600.0)
    home, batch = tmp_path / "home", tmp_path / "srv" / "videos"
    home.mkdir()
    (batch / "manifests").mkdir(parents=True)
    manifest = write_manifest(batch / "manifests")
    state = batch / "state"
    state.mkdir()  # as the README's cron line has it (its log goes there), so the ledger is found from any folder
    proc = start_cli("run", str(manifest), "--base-url", sim.base_url, "--rpm", "none", cwd=home)
    try:
        wait_for(lambda: sim.accepted() == 3 and _holding(state, proc.pid), what="the first run's three paid tasks")
    except AssertionError:
        proc.kill()
        raise AssertionError(finish_cli(proc)) from None
    return home, manifest, state, proc, sim.accepted()


def test_a_quiet_tick_overlapping_a_run_mails_nothing_and_exits_75(tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner -q run` is "quiet when all is well", and the README calls an overlapping tick exit 75, nothing to do.
    It printed "error: another runner holds the ledger … stop it": cron mailed it on every overlapping tick, telling
    the operator to stop a healthy run (cron sweep)."""
    home, manifest, state, first, paid = _a_run_holding_the_ledger(tmp_path, provider)
    try:
        quiet = cron_tick("-q", "run", str(manifest), "--rpm", "none", home=home)
        assert quiet.code == 75, str(quiet)
        assert quiet.stderr == "" and quiet.stdout == "", str(quiet)  # nothing for cron to mail
        loud = cron_tick("run", str(manifest), "--rpm", "none", home=home)  # a plain log still says why it did nothing
        assert loud.code == 75, str(loud)
        assert f"pid {first.pid}" in loud.stderr and "error" not in loud.stderr, str(loud)
        assert "nothing was sent" in loud.stderr, str(loud)
        assert " cmd=run" in (state / "ledger.lock").read_text(encoding="utf-8")  # what holds it, for the refused
        retry = cron_tick("retry", str(manifest), "--failed", home=home)
        assert retry.code == 75 and f"another `runner run` holds the ledger in {state}" in retry.stderr, str(retry)
        assert "waits for the run" in retry.stderr, str(retry)
    finally:
        first.send_signal(signal.SIGTERM)
        stderr = finish_cli(first)
    assert first.returncode == 3, stderr
    assert counts(state) == {"running": paid}  # the ticks sent nothing


def test_a_tick_behind_a_stopped_run_says_it_is_stopped(tmp_path: Path, provider: ProviderFactory) -> None:
    """A run that holds the ledger, then is stopped (Ctrl-Z in a terminal left open, SIGSTOP, a laptop's lid): every
    later tick exited 75, "the other run is working", for as long as it stayed stopped, and nothing said it was not
    working at all (cron sweep). The tick now says it is stopped and how to resume it, even with -q."""
    home, manifest, state, first, paid = _a_run_holding_the_ledger(tmp_path, provider)
    first.send_signal(signal.SIGSTOP)
    try:
        tick = cron_tick("-q", "run", str(manifest), "--rpm", "none", home=home)
        assert tick.code == 75, str(tick)
        assert f"pid {first.pid}" in tick.stderr and "is stopped" in tick.stderr, str(tick)
        assert f"kill -CONT {first.pid}" in tick.stderr, str(tick)
    finally:
        first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGTERM)
        stderr = finish_cli(first)
    assert first.returncode == 3, stderr
    assert counts(state) == {"running": paid}  # the tick sent nothing


def test_a_graceful_stop_waits_the_read_timeout_at_most_not_for_the_answer(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """The bound the README gives systemd's TimeoutStopSec and `timeout -k`: SIGTERM while the provider holds its
    answers ten minutes; the run ends by itself once the read timeout (here 1 s) has passed for the POSTs on the
    wire — each held in doubt, never sent again — and exits 4, not after the answers, nor at the SIGKILL."""
    sim = provider(task_seconds=0.0, p_slow=1.0, slow_seconds=600.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    proc = start_cli("run", str(manifest), "--state", str(state), "--base-url", sim.base_url, "--rpm", "none",
                     cwd=tmp_path, env={"RUNNER_READ_TIMEOUT": "1"})
    wait_for(lambda: sim.accepted() >= 1, what="a paid task whose answer the provider holds")
    proc.send_signal(signal.SIGTERM)
    stderr = finish_cli(proc)
    assert proc.returncode == 4, stderr
    assert "SIGTERM" in stderr and "IN DOUBT" in stderr, stderr
    found = counts(state)
    assert found["in_doubt"] == sim.accepted() and found.get("pending", 0) == 3 - sim.accepted(), found


def test_a_quiet_tick_after_jobs_failed_says_why_it_exits_1(tmp_path: Path, provider: ProviderFactory) -> None:
    """`-q` mails nothing when all is well; a batch finished with failed jobs is not (exit 1 on every run until they
    are retried). After the tick where they failed, every later one exited 1 with not a line, so the mail of a
    wrapper that sends a failed job's output (cronic, chronic) was empty (cron sweep; jobs held in doubt were said by
    every tick already). It now ends on the summary line, its last word the exit code's."""
    sim = provider(p_task_failed=1.0)
    home, batch = tmp_path / "home", tmp_path / "videos"
    home.mkdir()
    (batch / "state").mkdir(parents=True)
    manifest = write_manifest(batch)
    args = ("-q", "run", str(manifest), "--base-url", sim.base_url, "--rpm", "none", "--poll-interval", "0.05")
    first = cron_tick(*args, home=home)
    assert first.code == 1, str(first)
    assert first.stderr.count("failed at the provider") == 3, str(first)
    assert first.stderr.rstrip("\n").endswith("[finished: 3 failed]"), str(first)
    again = cron_tick(*args, home=home)
    assert again.code == 1, str(again)
    assert again.stderr.rstrip("\n").endswith("[finished: 3 failed]") and again.stderr.count("\n") == 1, str(again)
    assert sim.accepted() == 3  # nothing paid twice
