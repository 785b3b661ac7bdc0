"""`runner verify` reads every stored video without the ledger's lock: a run started meanwhile goes on.

It opened the ledger to write from its start, so it held the lock while it read every video whole (most of an hour
for a big batch of real videos): a cron run started meanwhile was refused, exit 75, "another runner is at work on
the ledger … this run leaves the work to it", for all that time, though verify does none of a run's work. It now
checks read-only, and takes the lock only to put back or download again what it found missing.
"""

from __future__ import annotations

from pathlib import Path

from runner.ledger import open_ledger

from test_cli_support import ProviderFactory, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest


def test_verify_checks_while_another_runner_holds_the_ledger(tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(task_seconds=0.05)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    verify = ("verify", str(manifest), "--state", str(state), "--base-url", sim.base_url)

    with open_ledger(state):  # a run at work on the ledger
        intact = run_cli(*verify, cwd=tmp_path)
    assert intact.code == 0 and "3 stored video(s) checked in trio: 0 missing" in intact.stdout, str(intact)

    (state / "outputs" / "trio" / "cat.mp4").unlink()
    with open_ledger(state):  # restoring it writes the ledger: that waits for the run
        waits = run_cli(*verify, cwd=tmp_path)
    assert waits.code == 75 and "missing  outputs/trio/cat.mp4" in waits.stdout, str(waits)
    assert not (state / "outputs" / "trio" / "cat.mp4").exists()
    restored = run_cli(*verify, cwd=tmp_path)
    assert restored.code == 0 and "1 missing or damaged, 1 restored, 0 not restored" in restored.stdout, str(restored)
    assert (state / "outputs" / "trio" / "cat.mp4").exists() and sim.accepted() == 3


def test_a_run_refused_while_verify_restores_names_verify_not_another_runner_at_work(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """A `runner verify` putting videos back holds the ledger's lock: a run (a cron tick) started meanwhile said
    "another runner is at work on the ledger … this run leaves the work to it", and `runner retry` "this command waits
    for the run", and `runner reject` "a run is writing the ledger and saves them within seconds": no run was at work,
    none was sending the batch, and verify saves no queued decision. The holder's lock line records its command now;
    the refusals name it, and say the batch goes on (the decision is saved) once it has finished."""
    from runner.process_command import running

    sim = provider(task_seconds=0.05)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    with open_ledger(state, readonly=True) as ledger:
        key = next(job.key for job in ledger.iter_jobs("trio"))
    running("verify")  # this process, as the CLI names a command: its lock line says so
    try:
        with open_ledger(state):
            assert " cmd=verify" in (state / "ledger.lock").read_text(encoding="utf-8")
            tick = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
            retry = run_cli("retry", str(manifest), "--state", str(state), "--failed", cwd=tmp_path)
            reject = run_cli("reject", str(manifest), key, "--reason", "blurry", "--state", str(state), cwd=tmp_path)
    finally:
        running("")
    assert tick.code == 75 and "`runner verify` holds the ledger" in tick.stderr, str(tick)
    assert "another runner" not in tick.stderr and "nothing was sent" in tick.stderr, str(tick)
    assert retry.code == 75 and "error: `runner verify` holds the ledger" in retry.stderr, str(retry)
    assert "waits for the run" not in retry.stderr and "another runner" not in retry.stderr, str(retry)
    # Queued, as during a run; but verify applies no queue: "a run … saves them within seconds" was not so
    assert reject.code == 0 and "1 reject(s) queued" in reject.stdout and "within seconds" not in reject.stdout, str(reject)
    assert "`runner verify` holds the ledger" in reject.stdout and "the next command that writes it" in reject.stdout
    with open_ledger(state) as ledger:  # the next writer saves it
        job = ledger.get(key, "trio")
        assert job is not None and job.review == "rejected", job
    assert sim.accepted() == 3  # nothing sent again
