"""Bad input never yields a traceback: one clear line, an exit code, and nothing recorded is lost.

(`run_cli` itself asserts that no invocation prints a Python traceback.)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from runner.ledger import DB_NAME, open_ledger
from runner.simulator import ManualClock, SimConfig, Simulator, SimulatorThread

from test_cli_support import (
    SIX_JOBS,
    Provider,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def test_unreachable_base_url_stops_with_exit_5_and_nothing_in_doubt(tmp_path: Path) -> None:
    """A base URL nobody listens on: a clear 'unreachable' message, exit 5 (its own code, for alerting),
    jobs still pending, none in doubt."""
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    state = tmp_path / "state"
    # The engine backs off between connect failures before it declares the provider unreachable
    # (6 in a row); six submits at once fail together, so this test does not wait for the backoff.
    result = run_cli(*run_args("run", manifest, state, "--base-url", "http://127.0.0.1:9", "--rpm", "none",
                               "--concurrency", "6"), cwd=tmp_path)
    assert result.code == 5, str(result)
    assert "unreachable" in result.stderr and "--base-url" in result.stderr and "127.0.0.1:9" in result.stderr
    assert counts(state, "six") == {"pending": 6}
    assert result.seconds < 15, f"took {result.seconds:.1f} s to give up"


def test_state_dir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    """--state pointing at a regular file is a usage error with a clear message; the file is untouched."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "notes.txt"
    state.write_text("mine\n")
    result = run_cli(*run_args("run", manifest, state, "--simulate"), cwd=tmp_path, key=None)
    assert result.code == 2, str(result)
    assert "notes.txt" in result.stderr and "file" in result.stderr
    assert state.read_text() == "mine\n"


def test_unwritable_state_dir_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    """A state directory that cannot be created (under a regular file) exits 2 naming it; nothing is sent."""
    manifest = write_manifest(tmp_path)
    (tmp_path / "plain").write_text("x")
    state = tmp_path / "plain" / "state"
    result = run_cli(*run_args("run", manifest, state, "--simulate"), cwd=tmp_path, key=None)
    assert result.code == 2, str(result)
    assert "cannot create the state directory" in result.stderr and "--state" in result.stderr
    assert "simulator listening" not in result.stderr  # checked before anything could be sent


def test_corrupt_ledger_exits_2_and_is_left_untouched(tmp_path: Path, provider: ProviderFactory) -> None:
    """A ledger file that is not a database: clear message, exit 2, file unchanged, nothing sent."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    garbage = bytes(range(256)) * 40
    (state / DB_NAME).write_bytes(garbage)
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "ledger.db" in result.stderr and "not a usable runner ledger" in result.stderr
    assert (state / DB_NAME).read_bytes() == garbage
    assert sim.accepted() == 0
    status = run_cli("status", str(manifest), "--state", str(state), cwd=tmp_path)
    assert status.code == 2, str(status)
    assert "not a usable runner ledger" in status.stderr


def test_newer_schema_ledger_exits_2_and_is_left_untouched(tmp_path: Path, provider: ProviderFactory) -> None:
    """A ledger written by a newer runner: 'upgrade runner', exit 2, nothing changed, nothing sent."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    with open_ledger(state):
        pass
    db = sqlite3.connect(state / DB_NAME)
    db.execute("PRAGMA user_version = 999")
    db.commit()
    db.close()
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "newer" in result.stderr and "upgrade" in result.stderr
    assert sim.accepted() == 0
    db = sqlite3.connect(state / DB_NAME)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 999
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
    finally:
        db.close()
    for command in ("status", "export"):
        read = run_cli(command, str(manifest), "--state", str(state), cwd=tmp_path)
        assert read.code == 2 and "newer" in read.stderr, str(read)


def test_disk_full_while_downloading_keeps_the_result_for_the_next_run(tmp_path: Path,
                                                                       provider: ProviderFactory) -> None:
    """No room for a video: clear message, exit 6 (someone must free space), the job stays `succeeded`; the next
    run fetches it unpaid."""
    sim = provider(video_bytes=2_000_000)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    full = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, max_file_bytes=1_000_000)
    assert full.code == 6, str(full)
    assert "cannot write" in full.stderr and "run again" in full.stderr, str(full)
    # the limit here is the process's file size limit (EFBIG), which freeing space would not lift (sweep, 12-05)
    assert "raise the file size limit" in full.stderr and "free space" not in full.stderr, str(full)
    assert counts(state).get("succeeded", 0) >= 1 and "done" not in counts(state), counts(state)
    assert sim.accepted() == 3
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert counts(state) == {"done": 3}
    assert sim.accepted() == 3  # downloaded later, paid once


def test_a_file_size_limit_below_a_new_ledger_is_named(tmp_path: Path, provider: ProviderFactory) -> None:
    """A first run under `ulimit -f 50` (a ledger is about 110 kB when made): the ledger is built under a temporary
    name, and the check that names the limit looked only at ledger.db and its WAL, so the line said "I/O error on
    ledger.db (disk I/O error)", sending the operator to a healthy disk (the README walk, 2026-12-05). It names the
    limit to raise now; exit 6, nothing sent, no ledger left half made."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    limited = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, max_file_bytes=50_000)
    assert limited.code == 6, str(limited)
    assert "file size limit" in limited.stderr and "I/O error" not in limited.stderr, str(limited)
    assert sim.accepted() == 0 and not (state / "ledger.db").exists()


def test_disk_full_while_recording_stops_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    """The ledger cannot grow mid-run (the file size limit): one clear line naming that limit, exit 6; the next run pays no body twice and records
    the task ids that arrived while the ledger was full (from the rescue journal): none is left in doubt."""
    clock = ManualClock()
    sim = Provider(Simulator(SimConfig(task_seconds=60.0), clock=clock), None)  # type: ignore[arg-type]
    sim.server = SimulatorThread(sim.sim).start()
    try:
        manifest = write_manifest(tmp_path)
        state = tmp_path / "state"
        plan = run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "0")), cwd=tmp_path)
        assert plan.code == 3 and counts(state) == {"pending": 3}, str(plan)
        # Room for the ledger's WAL to take the run's first records, not all of them.
        full = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, max_file_bytes=44_000)
        assert full.code == 6, str(full)
        assert "runner: error:" in full.stderr and "ledger.db" in full.stderr, str(full)
        # SQLite reports EFBIG as a disk I/O error: the line names the limit to raise, not a disk to check (sweep, 12-05)
        assert "file size limit" in full.stderr and "I/O error" not in full.stderr, str(full)
        assert "free space" not in full.stderr, str(full)  # no space to free: the limit is the process's
        sim.sim.configure(task_seconds=0.0)
        clock.advance(61.0)  # the tasks created meanwhile have finished
        again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
        assert again.code == 0, str(again)
        found = counts(state)
        assert found == {"done": 3}, found
        assert sim.max_per_body() == 1  # nothing paid twice
        with open_ledger(state, readonly=True) as ledger:
            recorded = {job.task_id for job in ledger.iter_jobs("trio") if job.task_id}
        assert recorded == set(sim.sim.task_ids())  # every paid task recorded
    finally:
        sim.server.stop()


def test_output_name_too_long_to_download_is_refused_before_paying(tmp_path: Path, provider: ProviderFactory) -> None:
    """A 240-byte output name passes no `plan` and no `run`: exit 2 naming file and line, nothing sent."""
    sim = provider()
    long = "n" * 236
    manifest = write_manifest(tmp_path, f"name: trio\nprompt: 'a {{v}}'\nmatrix:\n  v: [{long}, b]\noutput: '{{v}}.mp4'\n")
    plan = run_cli("plan", str(manifest), "--state", str(tmp_path / "state"), cwd=tmp_path)
    assert plan.code == 2, str(plan)
    assert f"{manifest}:5" in plan.stderr and "240 bytes" in plan.stderr, str(plan)
    result = run_cli(*run_args("run", manifest, tmp_path / "state", *sim.engine_args()), cwd=tmp_path)
    assert result.code == 2, str(result)
    assert sim.accepted() == 0


def test_a_manifest_nested_500_levels_deep_exits_2_naming_the_file(tmp_path: Path) -> None:
    """`plan` and `run` on a manifest nested 500 levels deep: exit 2, 'nested too deeply', no traceback."""
    manifest = write_manifest(tmp_path, "name: deep\nprompt: hi\nextra: " + "[" * 500 + "]" * 500 + "\n",
                              name="deep.yaml")
    for command in ("plan", "run"):
        result = run_cli(*run_args(command, manifest, tmp_path / "state"), cwd=tmp_path)
        assert result.code == 2, str(result)
        assert "nested too deeply" in result.stderr and "deep.yaml" in result.stderr, str(result)
