"""Every `runner …` command a message tells the operator to paste reaches the ledger of the command that printed it,
pasted into bash as printed: ``--state`` as given, and a PostgreSQL ledger's ``--ledger`` (its URL without the
password, or ``"$RUNNER_LEDGER_URL"`` when the variable holds the password) — one function says them all
(runner.service.hints ``runner_command``, through ``ledger_words``).

A PostgreSQL operator (``--ledger URL --state videos``) was told ``runner regenerate MANIFEST --state videos``, or
``runner run MANIFEST --state videos --budget 1.01`` at a budget stop: pasted, the command opened the SQLite ledger
in ``videos/`` — none there: refused (stuck), or a new ledger that knows none of the jobs.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.ledger.postgres import open_postgres_ledger
from tests.acceptance.test_cli_support import FAST, KEY, ProviderFactory, clean_env, provider, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

PASSWORD = "pw-never-printed-51c2"


def _pasted(command: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``command`` pasted into bash, `runner` being this tree's CLI, in a clean environment (no RUNNER_*)."""
    shell = shutil.which("bash") or pytest.skip("no bash here")
    return subprocess.run([shell, "-c", f'runner() {{ {shlex.quote(sys.executable)} -m runner "$@"; }}; {command}'],
                          cwd=cwd, env=clean_env({"NOVITA_API_KEY": KEY, **(env or {})}), capture_output=True,
                          text=True, timeout=120, check=False)


def _quoted(text: str, head: str) -> str:
    """The one backquoted command in ``text`` that starts with ``head``."""
    [command] = {part for part in text.split("`")[1::2] if part.startswith(head)}
    return command


def _next(stdout: str) -> str:
    """The command of the `next:` line, without its note."""
    line = next(line for line in stdout.splitlines() if line.startswith("next: "))
    return line.removeprefix("next: ").split("   (")[0]


def _states(url: str, videos: Path) -> dict[str, int]:
    with open_postgres_ledger(url, videos, readonly=True) as ledger:
        return {str(state): n for state, n in ledger.counts("trio").items() if n}


def test_the_commands_printed_on_a_postgres_ledger_reach_it_pasted(tmp_path: Path, pg_url: str,
                                                                   provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    videos = tmp_path / "batch videos"  # not ./state, and a space to quote
    url = pg_url.replace("postgresql://runner@", f"postgresql://runner:{PASSWORD}@")  # trust auth: pasted without it
    ledger = ("--ledger", url, "--state", str(videos))
    printed: list[str] = []

    stopped = run_cli("run", str(manifest), *ledger, *sim.engine_args("--budget", "0.4"), cwd=tmp_path)
    assert stopped.code == 3 and "stopped at its budget" in stopped.stderr, str(stopped)
    finish = _quoted(stopped.stderr, "runner run")
    printed.append(stopped.stdout + stopped.stderr)
    finished = _pasted(f"{finish} {shlex.join(FAST)}", tmp_path)
    assert finished.returncode == 0, finish + "\n" + finished.stderr
    assert _states(pg_url, videos) == {"done": 3} and sim.accepted() == 3  # the same ledger: each job paid once
    assert shlex.split(finish)[3:7] == ["--state", str(videos), "--ledger", pg_url], finish

    with open_postgres_ledger(pg_url, videos, readonly=True) as opened:
        key = next(iter(opened.iter_jobs("trio"))).key
    rejected = run_cli("reject", str(manifest), key, "--reason", "melting", *ledger, cwd=tmp_path)
    assert rejected.code == 0, str(rejected)
    printed.append(rejected.stdout + rejected.stderr)
    status = run_cli("status", str(manifest), *ledger, cwd=tmp_path)
    assert status.code == 0, str(status)
    printed.append(status.stdout + status.stderr)
    runs = _pasted(_quoted(status.stdout, "runner runs"), tmp_path)
    assert runs.returncode == 0 and "2 run(s)" in runs.stdout, runs.stdout + runs.stderr
    assert shlex.split(_quoted(status.stdout, "runner regenerate")) == shlex.split(_next(rejected.stdout))

    noticed = run_cli("run", str(manifest), *ledger, *sim.engine_args(), cwd=tmp_path)  # nothing to send: says so
    assert noticed.code == 0, str(noticed)
    printed.append(noticed.stdout + noticed.stderr)
    assert shlex.split(_quoted(noticed.stderr, "runner regenerate")) == shlex.split(_next(rejected.stdout))
    regenerated = _pasted(_next(rejected.stdout), tmp_path)
    assert regenerated.returncode == 0 and "1 job(s) back to pending" in regenerated.stdout, regenerated.stderr
    printed.append(regenerated.stdout + regenerated.stderr)
    assert _states(pg_url, videos) == {"done": 2, "pending": 1}
    again = _pasted(f"{_next(regenerated.stdout)} {shlex.join(FAST)}", tmp_path)
    assert again.returncode == 0, again.stderr
    assert _states(pg_url, videos) == {"done": 3} and sim.accepted() == 4  # the fresh sample, paid once
    assert not (videos / "ledger.db").exists() and not (tmp_path / "state").exists()  # no second ledger anywhere
    assert not any(PASSWORD in text for text in printed)


def test_the_commands_printed_under_runner_ledger_url_name_the_variable(tmp_path: Path, pg_url: str,
                                                                        provider: ProviderFactory) -> None:
    """The ledger from RUNNER_LEDGER_URL with its password: the hints name the variable, whose password they keep
    (pasted in that shell) and do not print."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    videos = tmp_path / "videos"
    env = {"RUNNER_LEDGER_URL": pg_url.replace("postgresql://runner@", f"postgresql://runner:{PASSWORD}@")}
    ran = run_cli("run", str(manifest), "--state", str(videos), *sim.engine_args(), cwd=tmp_path, env=env)
    assert ran.code == 0, str(ran)
    with open_postgres_ledger(pg_url, videos, readonly=True) as opened:
        key = next(iter(opened.iter_jobs("trio"))).key
    rejected = run_cli("reject", str(manifest), key, "--reason", "melting", "--state", str(videos), cwd=tmp_path,
                       env=env)
    assert rejected.code == 0 and PASSWORD not in rejected.stdout + rejected.stderr, str(rejected)
    regenerate = _next(rejected.stdout)
    assert regenerate.endswith('--ledger "$RUNNER_LEDGER_URL"'), regenerate
    regenerated = _pasted(regenerate, tmp_path, env)
    assert regenerated.returncode == 0 and "1 job(s) back to pending" in regenerated.stdout, regenerated.stderr
    assert _states(pg_url, videos) == {"done": 2, "pending": 1}


def test_the_retries_printed_for_jobs_in_doubt_on_a_postgres_ledger_reach_it_pasted(
        tmp_path: Path, pg_url: str, provider: ProviderFactory) -> None:
    """A run holding jobs in doubt said "Decide with `runner retry MANIFEST --state videos --in-doubt`"; `retry
    --failed --in-doubt` refused saying to retry one kind at a time: pasted, each opened the SQLite ledger of videos/
    (none: refused, stuck), not the database."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    videos = tmp_path / "batch videos"
    ledger = ("--ledger", pg_url, "--state", str(videos))
    sim.sim.configure(p_drop=1.0)
    assert run_cli("run", str(manifest), *ledger, *sim.engine_args(), cwd=tmp_path).code == 4
    sim.sim.configure(p_drop=0.0)
    held = run_cli("run", str(manifest), *ledger, *sim.engine_args(), cwd=tmp_path)
    assert held.code == 4, str(held)
    decide = _quoted(held.stderr, "runner retry")
    retried = _pasted(f"{decide} --dry-run", tmp_path)
    assert retried.returncode == 0 and "would put 3 in_doubt job(s) back" in retried.stdout, decide + retried.stdout + retried.stderr
    both = run_cli("retry", str(manifest), "--failed", "--in-doubt", *ledger, cwd=tmp_path)
    assert both.code == 2, str(both)
    [in_doubt] = [part for part in both.stderr.split("`")[1::2] if part.endswith(" --in-doubt")]
    one = _pasted(f"{in_doubt} --dry-run", tmp_path)
    assert one.returncode == 0 and "would put 3" in one.stdout, one.stdout + one.stderr
    assert _states(pg_url, videos) == {"in_doubt": 3}


def test_the_adopt_a_refused_adopt_file_prints_finds_its_ledger(tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner adopt KEY --file --state DIR` of a job whose output name and beside name both hold a video said to move
    one away and run `runner adopt KEY --file` again: pasted, that looked in ./state (no ledger: refused)."""
    from test_cli_adopt_file import _restored_beside_its_videos

    from runner.storage.api import beside_name

    sim = provider(task_seconds=0.05)
    _, state, paths = _restored_beside_its_videos(tmp_path, sim, "state elsewhere")
    key, rel = next(iter(paths.items()))
    beside = state / beside_name(rel, key)
    shutil.copyfile(state / rel, beside)
    both = run_cli("adopt", key, "--file", "--state", str(state), cwd=tmp_path)
    assert both.code != 0 and "hold a video no job records" in both.stderr, str(both)
    again = _quoted(both.stderr, "runner adopt")
    beside.unlink()
    adopted = _pasted(again, tmp_path)
    assert adopted.returncode == 0 and f"job {key}: done from its file" in adopted.stdout, \
        again + adopted.stdout + adopted.stderr
    assert sim.accepted() == 6 and not (tmp_path / "state").exists()  # nothing paid again, no second ledger


def test_the_ways_on_a_ledger_copied_elsewhere_prints_work_pasted(tmp_path: Path, provider: ProviderFactory) -> None:
    """A run on a ledger `runner ledger copy` moved said "run with --state DIR" and "`runner ledger reopen DIR`" with
    the folders unquoted: a folder with a space, pasted, was two words (reopen refused: "got unexpected extra
    argument"; the run pointed at the wrong folder)."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state, moved = tmp_path / "batch state", tmp_path / "batch state new"
    assert run_cli("run", str(manifest), "--state", str(state), *sim.engine_args("--budget", "0.4"),
                   cwd=tmp_path).code == 3
    assert run_cli("ledger", "copy", str(state), str(moved), cwd=tmp_path).code == 0
    stale = run_cli("run", str(manifest), "--state", str(state), *sim.engine_args(), cwd=tmp_path)
    assert stale.code == 2 and "was copied to" in stale.stderr, str(stale)
    there = stale.stderr.split("run with ")[1].split(". Running on here")[0]
    ran = _pasted(f"runner run {shlex.quote(str(manifest))} {there} {shlex.join(sim.engine_args())}", tmp_path)
    assert ran.returncode == 0 and sim.accepted() == 3, there + ran.stderr  # on the copy: the rest, each paid once
    reopened = _pasted(_quoted(stale.stderr, "runner ledger reopen"), tmp_path)
    assert reopened.returncode == 0 and "runs may use it again" in reopened.stdout, reopened.stdout + reopened.stderr


def test_the_regenerate_an_export_prints_for_the_clips_it_leaves_out_works_pasted(tmp_path: Path) -> None:
    """`runner export MANIFEST --state DIR` of a batch with a rejected clip said "(`runner regenerate MANIFEST` makes
    new ones)": pasted, the word MANIFEST, and no --state (refused; or the manifest's own state/, another batch)."""
    from runner.ledger import open_ledger

    manifest = write_manifest(tmp_path)
    state = tmp_path / "state elsewhere"
    ran = run_cli("run", str(manifest), "--state", str(state), "--simulate", "--sim-task-seconds", "0", *FAST,
                  cwd=tmp_path)
    assert ran.code == 0, str(ran)
    with open_ledger(state, readonly=True) as ledger:
        key = next(iter(ledger.iter_jobs("trio"))).key
    assert run_cli("reject", str(manifest), key, "--reason", "melting", "--state", str(state), cwd=tmp_path).code == 0
    for fmt in ("jsonl", "hf"):
        exported = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, "--to",
                           str(tmp_path / f"out-{fmt}"), cwd=tmp_path)
        assert exported.code == 0, str(exported)
        regenerate = _pasted(f"{_quoted(exported.stderr, 'runner regenerate')} --dry-run", tmp_path)
        assert regenerate.returncode == 0 and "1 rejected clip(s)" in regenerate.stdout, \
            exported.stderr + regenerate.stdout + regenerate.stderr


def test_the_folder_a_refused_copy_names_works_pasted(tmp_path: Path, provider: ProviderFactory) -> None:
    """Two `cp -a` copies of one stopped folder, the first gone on (on a disk whose folder has a space): the second's
    run was refused saying "Run with --state /…/big disk/state", and to go on anyway "`mv /…/spare disk/state/ledger.mark
    /…/spare disk/state/ledger.mark.old`", unquoted — pasted, four words (refused; mv of what is not the mark)."""
    import signal

    from test_cli_copied_original import _cp_a, _stopped_run

    sim = provider(task_seconds=3600)
    manifest, state = _stopped_run(tmp_path, sim, signal.SIGINT)
    engine = sim.engine_args("--concurrency", "6")
    first, second = tmp_path / "big disk" / "state", tmp_path / "spare disk" / "state"
    _cp_a(state, first)
    _cp_a(state, second)
    assert run_cli("submit", str(manifest), "--state", str(first), *engine, cwd=tmp_path).code == 3
    paid = sim.accepted()
    spare = run_cli("submit", str(manifest), "--state", str(second), *engine, cwd=tmp_path)
    assert spare.code == 2 and sim.accepted() == paid, str(spare)
    there = spare.stderr.split("Run with ")[1].split(". To go on")[0]
    went = _pasted(f"runner submit {shlex.quote(str(manifest))} {there} {shlex.join(engine)}", tmp_path)
    assert went.returncode == 3, there + went.stderr  # the copy's jobs all running: nothing to send, work outstanding
    assert sim.accepted() == paid and sim.max_per_body() == 1  # on the copy that went on: nothing paid again
    aside = _pasted(_quoted(spare.stderr, "mv "), tmp_path)  # the way to go on with the spare anyway: its mark aside
    assert aside.returncode == 0, aside.stderr
    assert not (second / "ledger.mark").exists() and (second / "ledger.mark.old").is_file()
