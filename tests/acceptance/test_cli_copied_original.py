"""The original of a state directory copied by the operator's own tools (``cp -a state /big/state``) after its run
was stopped, once a run went on from the copy (copy-run hunt, 2026-12-06). The copy's run was let through, warned
that the original was now its twin; a cron line still naming ``./state`` then opened the original as itself (its
mark names it), read every job the copy had sent as pending, and paid for each again. The copy's run now marks the
original moved, as `runner ledger copy` marks its source, before it sends anything: the original's runs are refused,
told where the ledger went on."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.testing import fill_disk

from test_cli_support import (
    KEY,
    SIX_JOBS_TWO_AT_ONCE,
    Provider,
    ProviderFactory,
    clean_env,
    cli_argv,
    finish_cli,
    jobs_running,
    provider,
    run_args,
    run_cli,
    setpriv_argv,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

SmallDisk = Callable[..., Path]  # the suite's fixture (tests/conftest.py)

SIX = SIX_JOBS_TWO_AT_ONCE


def _stopped_run(tmp_path: Path, sim: Provider, how: signal.Signals,
                 state: Path | None = None) -> tuple[Path, Path]:
    """``runner run six.yaml`` from ``tmp_path`` (./state, or ``state``), two of its six jobs running at the provider,
    stopped by ``how``: (manifest, state)."""
    manifest = write_manifest(tmp_path, SIX, name="six.yaml")
    state = tmp_path / "state" if state is None else state
    proc: subprocess.Popen[str] = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    try:
        wait_for(lambda: sim.accepted() == 2 or proc.poll() is not None, what="the run's first two submits")
        assert sim.accepted() == 2
        wait_for(lambda: jobs_running(state) == 2, what="the two task ids recorded")
    finally:
        proc.send_signal(how)
        finish_cli(proc)
    return manifest, state


def _cp_a(state: Path, to: Path) -> None:
    """``cp -a state to``: every file as it is, the WAL, the lock file and the mark included."""
    to.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(state), str(to)], check=True)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_the_original_of_a_copy_a_run_went_on_from_pays_nothing_again(tmp_path: Path, provider: ProviderFactory,
                                                                       how: signal.Signals) -> None:
    """Stopped (Ctrl-C) or killed, copied to a roomier disk, run from there (four more jobs paid), then the cron line's
    `runner run six.yaml` on the original: it paid for those four again (10 tasks for 6 jobs). Refused now, naming the
    copy and how to go on; the copy goes on, every job billed once."""
    sim = provider(task_seconds=3600)
    manifest, state = _stopped_run(tmp_path, sim, how)
    big = tmp_path / "big" / "state"
    _cp_a(state, big)
    copy = run_cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert copy.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(copy)

    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{cron}"
    assert cron.code == 2 and "nothing was sent" in cron.stderr.lower(), str(cron)
    assert f"--state {big}" in cron.stderr and f"runner ledger reopen {state}" in cron.stderr, str(cron)
    again = run_cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert again.code == 3 and sim.accepted() == 6 and "marked moved" not in again.stderr, str(again)
    reopened = run_cli("ledger", "reopen", str(state), cwd=tmp_path)  # the way back the refusal names
    assert reopened.code == 0 and str(big) in reopened.stdout + reopened.stderr, str(reopened)
    # the copy is still there: both are live now, and the line said nothing of it (both runs would pay again)
    said = " ".join(reopened.stderr.split())
    assert f"{big / 'ledger.db'} is still there" in said and "each pay" in said, str(reopened)


def test_a_copy_killed_once_it_marked_the_original_leaves_both_folders_safe(tmp_path: Path,
                                                                          provider: ProviderFactory) -> None:
    """kill -9 of the copy's run between marking the original moved and its first write (its own mark still names
    the original): the original is refused, nothing sent; the copy's next run goes on, every job billed once."""
    sim = provider(task_seconds=3600)
    manifest, state = _stopped_run(tmp_path, sim, signal.SIGKILL)
    big = tmp_path / "big" / "state"
    _cp_a(state, big)
    args = run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6"))
    killed = run_cli(*args, cwd=tmp_path, env={"RUNNER_TEST_CRASH_AT": "copy-run-moved"})
    assert killed.code == -signal.SIGKILL and sim.accepted() == 2, str(killed)

    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert cron.code == 2 and f"--state {big}" in cron.stderr and sim.accepted() == 2, str(cron)
    copy = run_cli(*args, cwd=tmp_path)
    assert copy.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(copy)
    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert cron.code == 2 and sim.accepted() == 6, str(cron)


def test_a_second_copy_of_an_original_another_copy_went_on_from_sends_nothing(tmp_path: Path,
                                                                              provider: ProviderFactory) -> None:
    """Two copies taken of one stopped folder (a spare, a second disk): the first went on (four jobs paid), and the
    second, whose ledger knows nothing of them, would pay for them again. Refused, naming where the ledger went on."""
    sim = provider(task_seconds=3600)
    manifest, state = _stopped_run(tmp_path, sim, signal.SIGINT)
    first, second = tmp_path / "big" / "state", tmp_path / "spare" / "state"
    _cp_a(state, first)
    _cp_a(state, second)
    went = run_cli(*run_args("submit", manifest, first, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert went.code == 3 and sim.accepted() == 6, str(went)
    spare = run_cli(*run_args("submit", manifest, second, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{spare}"
    assert spare.code == 2 and f"--state {first}" in spare.stderr and "Nothing was sent" in spare.stderr, str(spare)


def test_a_copy_whose_original_cannot_be_marked_runs_and_says_a_run_there_would_pay_again(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """The original made read-only (``chmod -R a-w``, a snapshot mounted read-only): it cannot be marked, so the
    copy runs as before, saying plainly that a run from the original would pay again for what it sends."""
    unprivileged = setpriv_argv()
    sim = provider(task_seconds=3600)
    manifest, state = _stopped_run(tmp_path, sim, signal.SIGINT)
    big = tmp_path / "big" / "state"
    _cp_a(state, big)
    for path in (state, *state.rglob("*")):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        copy = subprocess.run([*unprivileged, *cli_argv(*run_args("submit", manifest, big,
                                                                         *sim.engine_args("--concurrency", "6")))],
                              cwd=tmp_path, env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True,
                              timeout=60, check=False)
    finally:
        for path in (state, *state.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert copy.returncode == 3 and sim.accepted() == 6, copy.stderr
    said = " ".join(copy.stderr.split())
    assert f"{state} could not be marked moved here" in said and "pay for it again" in said, copy.stderr
    assert "Traceback" not in copy.stderr


def test_a_ledger_copy_of_the_original_a_copy_went_on_from_is_refused(tmp_path: Path,
                                                                       provider: ProviderFactory) -> None:
    """The original marked moved by the copy's run (four more jobs paid there), then `runner ledger copy state NEW`
    (a shared ledger set up from the folder the cron line names): the copy was made, live, its four jobs pending
    again, and a run on it paid for them a second time. Refused now, naming where the ledger went on; nothing made."""
    sim = provider(task_seconds=3600)
    manifest, state = _stopped_run(tmp_path, sim, signal.SIGINT)
    big, third = tmp_path / "big" / "state", tmp_path / "third" / "state"
    _cp_a(state, big)
    went = run_cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert went.code == 3 and sim.accepted() == 6, str(went)

    copied = run_cli("ledger", "copy", str(state), str(third), cwd=tmp_path)
    if (third / "ledger.db").exists():  # the hole: a live twin of the original
        again = run_cli(*run_args("submit", manifest, third, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
        assert sim.accepted() == 6, f"billed twice: {sim.accepted()} tasks\n{copied}\n{again}"
    said = " ".join(copied.stderr.split())
    assert copied.code == 2 and not (third / "ledger.db").exists(), str(copied)
    assert f"runner ledger copy {big} " in said and f"runner ledger reopen {state}" in said, str(copied)
    assert "Nothing was copied" in said or "nothing was copied" in said, str(copied)


def test_a_review_decision_in_the_original_a_copy_went_on_from_is_refused_not_dropped(
    tmp_path: Path, provider: ProviderFactory,
) -> None:
    """The original marked moved (a run went on from its copy), then `runner reject` / `regenerate` / the review page
    with --state of the original (the folder the operator reviews in): each was recorded in the original's ledger, which no run uses
    again, and said done; the copy's runs never saw the decision (the clip stayed in exports, never generated
    again). Refused now, naming where the ledger went on; nothing recorded."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    big = tmp_path / "big" / "state"
    _cp_a(state, big)
    assert run_cli(*run_args("run", manifest, big, *sim.engine_args()), cwd=tmp_path).code == 0
    key = _job_key(state)

    for args in (["reject", str(manifest), key, "--state", str(state), "--reason", "off"],
                 ["regenerate", str(manifest), "--state", str(state)],
                 ["review", str(manifest), "--state", str(state), "--port", "0"]):
        said = run_cli(*args, cwd=tmp_path)
        assert said.code == 2 and f"--state {big}" in said.stderr, str(said)
        assert "Traceback" not in said.stderr
    db = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT count(*) FROM jobs WHERE review IS NOT NULL OR state != 'done'").fetchone()[0] == 0
    finally:
        db.close()


def test_a_ledger_copy_from_a_cp_a_copy_leaves_the_original_refused(tmp_path: Path, provider: ProviderFactory) -> None:
    """`cp -a state /big/state`, then `runner ledger copy /big/state NEW` (a shared ledger set up from the roomier
    disk) and runs on NEW: the original was never looked at, and the cron line's run on it paid again for every job
    NEW's runs sent. The copy marks the original moved first, as a run from /big/state does."""
    sim = provider(task_seconds=3600)
    manifest, state = _stopped_run(tmp_path, sim, signal.SIGINT)
    big, shared = tmp_path / "big" / "state", tmp_path / "shared" / "state"
    _cp_a(state, big)
    copied = run_cli("ledger", "copy", str(big), str(shared), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    went = run_cli(*run_args("submit", manifest, shared, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert went.code == 3 and sim.accepted() == 6, str(went)

    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{cron}"
    assert cron.code == 2 and f"--state {big}" in cron.stderr, str(cron)


def _job_key(state: Path, in_state: str | None = None) -> str:
    """The key of a job in the ledger of ``state`` (one ``in_state``, when given), read without opening it to write."""
    db = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)
    try:
        where, args = ("WHERE state = ?", (in_state,)) if in_state else ("", ())
        return str(db.execute(f"SELECT key FROM jobs {where} LIMIT 1", args).fetchone()[0])
    finally:
        db.close()


def _copied_running(tmp_path: Path, sim: Provider) -> tuple[Path, Path, Path, str]:
    """A stopped run's ./state (two of six jobs paid), ``cp -a`` to /big/state: (manifest, state, big, the key of a job
    running there)."""
    manifest, state = _stopped_run(tmp_path, sim, signal.SIGINT)
    big = tmp_path / "big" / "state"
    _cp_a(state, big)
    key = _job_key(big, "running")
    return manifest, state, big, key


def _drilled_copy(tmp_path: Path, sim: Provider) -> tuple[Path, Path, Path]:
    """:func:`_copied_running`, and in the copy a command that sends nothing but writes the copy's ledger (`runner
    reject` of a job's clip): (manifest, state, big)."""
    manifest, state, big, key = _copied_running(tmp_path, sim)
    drill = run_cli("reject", str(manifest), key, "--state", str(big), "--reason", "off", cwd=tmp_path)
    assert f"{state} is left as it is" in " ".join(drill.stderr.split()), str(drill)
    return manifest, state, big


def test_a_run_from_a_copy_a_command_that_sent_nothing_wrote_first_marks_the_original(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """A `runner reject` in a cp -a copy left the original as it is and made the copy's mark its own; a run from the
    copy then saw no copy (four jobs paid there), and the cron line's run of the original paid for them again."""
    sim = provider(task_seconds=3600)
    manifest, state, big = _drilled_copy(tmp_path, sim)
    copy = run_cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert copy.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(copy)
    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{cron}"
    assert cron.code == 2 and f"--state {big}" in cron.stderr, str(cron)


def test_a_copy_a_command_that_sent_nothing_wrote_is_refused_once_the_original_went_on(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """The other order: the cron line's run of the original went on (four jobs paid), then a run from the copy,
    whose mark the `runner reject` there had made its own, read them pending and paid again. Refused now."""
    sim = provider(task_seconds=3600)
    manifest, state, big = _drilled_copy(tmp_path, sim)
    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert cron.code == 3 and sim.accepted() == 6, str(cron)
    copy = run_cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{copy}"
    assert copy.code == 2 and "Nothing was sent" in copy.stderr and "mv " in copy.stderr, str(copy)


def test_a_copy_refused_for_its_note_goes_on_once_its_mark_is_set_aside(tmp_path: Path,
                                                                        provider: ProviderFactory) -> None:
    """The refusal's way on (the copy's mark set aside) lifts the note with it: not refused again at every run."""
    sim = provider(task_seconds=3600)
    manifest, state, big = _drilled_copy(tmp_path, sim)
    assert run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path).code == 3
    args = run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6"))
    refused = run_cli(*args, cwd=tmp_path)
    assert refused.code == 2 and sim.accepted() == 6, str(refused)
    (big / "ledger.mark").rename(big / "ledger.mark.old")  # as the refusal says
    anyway = run_cli(*args, cwd=tmp_path)
    assert anyway.code == 3 and "Nothing was sent" not in anyway.stderr, str(anyway)
    again = run_cli(*args, cwd=tmp_path)
    assert again.code == 3 and sim.accepted() == 10 and "is a copy of" not in again.stderr, str(again)


def test_a_copy_of_a_noted_copy_marks_both_its_originals(tmp_path: Path, provider: ProviderFactory) -> None:
    """The drill's folder copied again (``cp -a /big/state /spare/state``) and run there: its mark names /big/state,
    its note ./state; both are marked moved, so neither the cron line nor a run from /big/state pays again."""
    sim = provider(task_seconds=3600)
    manifest, state, big = _drilled_copy(tmp_path, sim)
    spare = tmp_path / "spare" / "state"
    _cp_a(big, spare)
    went = run_cli(*run_args("submit", manifest, spare, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert went.code == 3 and sim.accepted() == 6, str(went)
    for folder in (state, big):
        cron = run_cli(*run_args("submit", manifest, folder, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
        assert sim.accepted() == 6, f"billed twice: {sim.accepted()} tasks\n{cron}"
        assert cron.code == 2 and f"--state {spare}" in cron.stderr, str(cron)


def test_a_ledger_copy_from_a_noted_copy_leaves_its_original_refused(tmp_path: Path,
                                                                     provider: ProviderFactory) -> None:
    """`runner ledger copy /big/state NEW` after a reject there: the original is marked moved, as a run from
    /big/state would have marked it; NEW carries no note (it is another ledger) and runs, every job billed once."""
    sim = provider(task_seconds=3600)
    manifest, state, big = _drilled_copy(tmp_path, sim)
    shared = tmp_path / "shared" / "state"
    copied = run_cli("ledger", "copy", str(big), str(shared), cwd=tmp_path)
    assert copied.code == 0, str(copied)
    went = run_cli(*run_args("submit", manifest, shared, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert went.code == 3 and sim.accepted() == 6 and "is a copy of" not in went.stderr, str(went)
    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{cron}"
    assert cron.code == 2 and f"--state {big}" in cron.stderr, str(cron)


def test_a_command_killed_once_the_copy_noted_its_original_leaves_it_looked_at(tmp_path: Path,
                                                                                provider: ProviderFactory) -> None:
    """kill -9 of the reject between the note and the copy's own mark: the next run from the copy still marks the
    original (the mark still names it, the note too), and the cron line's run pays nothing again."""
    sim = provider(task_seconds=3600)
    manifest, state, big, key = _copied_running(tmp_path, sim)
    killed = run_cli("reject", str(manifest), key, "--state", str(big), "--reason", "off", cwd=tmp_path,
                     env={"RUNNER_TEST_CRASH_AT": "copy-noted"})
    assert killed.code == -signal.SIGKILL and str(state) in (big / "ledger.mark").read_text(), str(killed)
    went = run_cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert went.code == 3 and sim.accepted() == 6, str(went)
    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert cron.code == 2 and sim.accepted() == 6 and f"--state {big}" in cron.stderr, str(cron)


def test_a_copy_of_a_folder_on_a_full_disk_sends_nothing_until_its_original_is_marked(
        tmp_path: Path, provider: ProviderFactory, small_disk: SmallDisk) -> None:
    """The disk under ./state filled up (its videos), so the operator ``cp -a``'s the folder to a roomier disk and runs
    there: the original could not be marked moved (no block for its ledger's write), the copy ran anyway with a
    warning (four jobs paid), and once space was freed on the old disk the cron line's run of ./state paid for
    those four again. Refused now, nothing sent, until the original can be marked: then the copy goes on and the
    cron line's run is refused."""
    sim = provider(task_seconds=3600)
    disk = small_disk(tmp_path / "disk", size="96m")  # (a run keeps 64 MiB free for the ledger, and its videos' room)
    manifest, state = _stopped_run(tmp_path, sim, signal.SIGINT, disk / "state")
    big = tmp_path / "big" / "state"
    _cp_a(state, big)
    filler = fill_disk(disk)
    args = run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6"))
    full = run_cli(*args, cwd=tmp_path)
    if full.code == 3:  # the hole: the copy went on, the original unmarked; the old disk's space freed, its cron run
        filler.unlink()
        cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
        assert sim.accepted() == 6, f"billed twice: {sim.accepted()} tasks\n{full}\n{cron}"
    said = " ".join(full.stderr.split())
    assert full.code == 6 and sim.accepted() == 2, str(full)
    assert "its disk is full" in said and "Nothing was sent" in said and "Free some space" in said, str(full)

    filler.unlink()  # the operator's fix
    copy = run_cli(*args, cwd=tmp_path)
    assert copy.code == 3 and sim.accepted() == 6 and sim.max_per_body() == 1, str(copy)
    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{cron}"
    assert cron.code == 2 and f"--state {big}" in cron.stderr, str(cron)


def test_a_noted_copy_the_original_went_on_from_still_takes_a_command_that_sends_nothing(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """A drill's folder (a `runner reject` there noted its original), then the live batch's cron run went on (four
    jobs paid): every later command there that sends nothing (the next drill's reject, verify) was refused as if it
    would pay, its way on setting the copy's mark aside, which dropped the note: a run from the copy then paid again
    for the four. It warns now, the note kept; a run from the copy is refused, every job billed once."""
    sim = provider(task_seconds=3600)
    manifest, state, big = _drilled_copy(tmp_path, sim)
    cron = run_cli(*run_args("submit", manifest, state, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert cron.code == 3 and sim.accepted() == 6, str(cron)
    key = _job_key(big, "running")
    drill = run_cli("reject", str(manifest), key, "--state", str(big), "--reason", "off", cwd=tmp_path)
    said = " ".join(drill.stderr.split())
    if "Nothing was sent or changed" in said:  # the hole: refused, told to set the copy's mark aside; done, a run
        (big / "ledger.mark").rename(big / "ledger.mark.old")
        run_cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
        assert sim.accepted() == 6, f"billed twice: {sim.accepted()} tasks\n{drill}"
    # (exit 2: the job is running, no clip to reject; what matters is that the command was not refused)
    assert f"{state} is left as it is" in said and "went on to commit" in said and "skipped" in said, str(drill)
    copy = run_cli(*run_args("submit", manifest, big, *sim.engine_args("--concurrency", "6")), cwd=tmp_path)
    assert sim.accepted() == 6 and sim.max_per_body() == 1, f"billed twice: {sim.accepted()} tasks\n{copy}"
    assert copy.code == 2 and "Nothing was sent" in copy.stderr, str(copy)
