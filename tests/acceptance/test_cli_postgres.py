"""Every command on a PostgreSQL ledger: ``--ledger URL`` or ``RUNNER_LEDGER_URL``; ``--state`` holds the videos.

Real ``runner`` subprocesses against the simulator on loopback and a throwaway PostgreSQL server
(``pg_url``; in CI a server that cannot start fails these tests). The URL carries a password
(trust authentication on loopback ignores it) that must never be printed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.ledger.postgres import open_postgres_ledger
from runner.manifest import expand, load_manifest
from runner.testing import fill_disk
from runner.testing_pg import TempPostgres
from tests.acceptance.test_cli_support import (
    FAST,
    SIX_JOBS,
    THREE_JOBS,
    ProviderFactory,
    finish_cli,
    provider,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]

PASSWORD = "pw-never-printed-7f3a"


def _with_password(url: str) -> str:
    return url.replace("postgresql://runner@", f"postgresql://runner:{PASSWORD}@")


def test_every_command_reads_and_writes_the_postgres_ledger(tmp_path: Path, pg_url: str,
                                                             provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    url = _with_password(pg_url)
    videos = tmp_path / "videos"
    outputs = []

    ran = run_cli("run", str(manifest), "--ledger", url, "--state", str(videos), *sim.engine_args(), cwd=tmp_path)
    outputs.append(ran)
    assert ran.code == 0, str(ran)
    assert sim.accepted() == 3
    assert not (videos / "ledger.db").exists()  # the ledger is the database; the state directory holds videos
    assert len(list(videos.rglob("*.mp4"))) == 3

    env = {"RUNNER_LEDGER_URL": url}
    status = run_cli("status", str(manifest), "--state", str(videos), "--json", cwd=tmp_path, env=env)
    outputs.append(status)
    assert status.code == 0, str(status)
    assert json.loads(status.stdout)["counts"]["done"] == 3

    listed = run_cli("ls", str(manifest), "--state", str(videos), cwd=tmp_path, env=env)
    outputs.append(listed)
    assert listed.code == 0 and listed.stdout.count("done") >= 3, str(listed)
    exported = run_cli("export", str(manifest), "--state", str(videos), cwd=tmp_path, env=env)
    outputs.append(exported)
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [row["state"] for row in rows] == ["done"] * 3, str(exported)
    shown = run_cli("show", rows[0]["key"], "--ledger", url, "--state", str(videos), cwd=tmp_path)
    outputs.append(shown)
    assert shown.code == 0 and rows[0]["key"] in shown.stdout, str(shown)
    planned = run_cli("plan", str(manifest), "--state", str(videos), "--json", cwd=tmp_path, env=env)
    outputs.append(planned)
    assert json.loads(planned.stdout)["to_submit"] == 0, str(planned)
    assert json.loads(planned.stdout)["ledger"] == pg_url  # the URL without its password

    again = run_cli("run", str(manifest), "--state", str(videos), *sim.engine_args(), cwd=tmp_path, env=env)
    outputs.append(again)
    assert again.code == 0 and sim.accepted() == 3, str(again)  # nothing paid twice
    for result in outputs:
        assert PASSWORD not in result.stdout + result.stderr, str(result)


def test_the_review_loop_and_verify_use_the_postgres_ledger(tmp_path: Path, pg_url: str,
                                                            provider: ProviderFactory) -> None:
    """verify, runs, reject, accept and regenerate take --ledger like every command. They opened the SQLite ledger
    in --state: `verify --check-only` said "0 checked" and exit 0 with a video missing, the others "no ledger"."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    url = _with_password(pg_url)
    videos = tmp_path / "videos"
    ran = run_cli("run", str(manifest), "--ledger", url, "--state", str(videos), *sim.engine_args(), cwd=tmp_path)
    assert ran.code == 0 and sim.accepted() == 3, str(ran)
    lost = sorted(videos.rglob("*.mp4"))[0]
    lost.unlink()
    where = ["--ledger", url, "--state", str(videos)]

    checked = run_cli("verify", str(manifest), *where, "--check-only", cwd=tmp_path)
    assert checked.code == 1 and "3 stored video(s) checked" in checked.stdout, str(checked)
    assert "1 missing or damaged" in checked.stdout and lost.name in checked.stdout, str(checked)
    restored = run_cli("verify", str(manifest), *where, "--base-url", sim.base_url, cwd=tmp_path)
    assert restored.code == 0 and "1 restored" in restored.stdout and lost.exists(), str(restored)

    runs = run_cli("runs", str(manifest), *where, "--json", cwd=tmp_path)
    assert runs.code == 0 and json.loads(runs.stdout.splitlines()[-1])["submitted"] == 3, str(runs)
    key = json.loads(run_cli("export", str(manifest), *where, cwd=tmp_path).stdout.splitlines()[0])["key"]
    rejected = run_cli("reject", str(manifest), key[:12], "--reason", "melting hands", *where, cwd=tmp_path)
    assert rejected.code == 0 and "1 clip(s) rejected" in rejected.stdout, str(rejected)
    dry = run_cli("regenerate", str(manifest), *where, "--dry-run", cwd=tmp_path)
    assert dry.code == 0 and "1 rejected clip(s) will be generated again" in dry.stdout, str(dry)
    accepted = run_cli("accept", str(manifest), key[:12], *where, cwd=tmp_path)
    assert accepted.code == 0 and "1 clip(s) accepted" in accepted.stdout, str(accepted)
    assert sim.accepted() == 3
    for result in (checked, restored, runs, rejected, dry, accepted):
        assert PASSWORD not in result.stdout + result.stderr, str(result)


def test_verify_where_no_batch_ran_says_so_instead_of_checking_nothing(tmp_path: Path) -> None:
    """A read-only SQLite ledger that does not exist reads as empty: `verify --check-only` said "0 stored video(s)
    checked" and exit 0 in a folder that holds no batch (a host given the wrong --state)."""
    manifest = write_manifest(tmp_path)
    for args in (["verify", "--check-only"], ["runs"], ["regenerate", "--dry-run"]):
        result = run_cli(args[0], str(manifest), "--state", str(tmp_path / "elsewhere"), *args[1:], cwd=tmp_path)
        assert result.code == 2 and "there is no ledger at" in result.stderr, str(result)
        assert "--ledger URL" in result.stderr, str(result)
    assert not (tmp_path / "elsewhere").exists()


def test_a_runner_whose_manifest_another_host_planned_again_stops_submitting_and_says_so(
    tmp_path: Path, pg_url: str, provider: ProviderFactory
) -> None:
    """The multi-host sweep: host A ran v1 of a manifest while host B ran v2 under the same name (prompts changed,
    jobs dropped). B's registration made v2's jobs the targets; A submitted none of its v1 jobs after that and
    ended "done 12/12 [complete]", exit 0, with 8 of its jobs never sent. A now stops submitting within a second,
    says why, and exits 3; nothing is paid twice."""
    sim = provider(task_seconds=0.4)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")  # concurrency 1: one task at a time
    other = write_manifest(tmp_path, SIX_JOBS.replace("[cat, dog, owl]", "[cat, fox]"), name="six-v2.yaml")
    videos = tmp_path / "videos"
    proc = start_cli("run", str(manifest), "--ledger", pg_url, "--state", str(videos), *sim.engine_args(),
                     cwd=tmp_path)
    wait_for(lambda: sim.accepted() >= 1 or proc.poll() is not None, timeout=30, what="the first submit")
    v2 = load_manifest(other)
    with open_postgres_ledger(pg_url, tmp_path / "host-b") as host_b:  # host B plans its version
        host_b.register(v2.name, v2.digest, expand(v2))
    stderr = finish_cli(proc, timeout=60)
    assert proc.returncode == 3, stderr
    assert "another runner on this ledger planned another version of its file" in stderr, stderr
    assert "[complete]" not in stderr, stderr
    assert sim.accepted() <= 4 and sim.max_per_body() == 1, stderr  # ~1 s to notice, 0.4 s a task


def test_a_run_rides_out_a_postgres_restart(tmp_path: Path, provider: ProviderFactory) -> None:
    """The multi-host sweep: `pg_ctl stop -m immediate`, then a start six seconds later, stopped every runner
    (exit 3, the batch halted until the next timer). A dropped connection is now made again before the next
    statement, for up to 15 s: the run goes on to the end, every task paid once."""
    sim = provider(task_seconds=0.5)
    manifest = write_manifest(tmp_path, SIX_JOBS, name="six.yaml")
    with TempPostgres.start() as server:  # its own server: halting the session's would fail the other tests
        url = server.create_database("restart")
        proc = start_cli("run", str(manifest), "--ledger", url, "--state", str(tmp_path / "videos"),
                         *sim.engine_args(), cwd=tmp_path)
        wait_for(lambda: sim.accepted() >= 2 or proc.poll() is not None, timeout=30, what="two submits")
        server.halt()
        time.sleep(2.0)  # the outage: a real server down, nothing to simulate
        server.resume()
        stderr = finish_cli(proc, timeout=90)
    assert proc.returncode == 0, stderr
    assert "connecting again for up to 15 s" in stderr, stderr
    assert sim.accepted() == 6 and sim.max_per_body() == 1, stderr


def test_a_ledger_restored_from_a_backup_between_runs_stops_the_next_run_before_it_pays_again(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """hunt-pg2: the DBA puts back last night's backup of the ledger's database while no runner runs. The next run
    found the jobs a `submit` before had paid for pending, and paid for them again; it stops now with exit 2
    (a timer's failure, not its success 3), nothing sent, saying which mark the server lost."""
    sim = provider()
    videos = tmp_path / "videos"
    first = write_manifest(tmp_path, THREE_JOBS.replace("trio", "first").replace("cat, dog, owl", "fox"), name="first.yaml")
    manifest = write_manifest(tmp_path)
    with TempPostgres.start() as server:  # its own server: its data directory is put back below
        url = server.create_database("restore")
        assert run_cli("run", str(first), "--ledger", url, "--state", str(videos), *sim.engine_args(),
                       cwd=tmp_path).code == 0
        server.halt("fast")
        subprocess.run(["cp", "-a", str(server.data_dir), str(tmp_path / "backup")], check=True)
        server.resume()
        paid = sim.accepted()
        ran = run_cli("submit", str(manifest), "--ledger", url, "--state", str(videos), *sim.engine_args(),
                      cwd=tmp_path)  # the tasks are paid for, not yet collected: no video guards them
        assert ran.code == 3 and sim.accepted() == paid + 3, str(ran)
        server.halt("fast")
        shutil.rmtree(server.data_dir)
        subprocess.run(["cp", "-a", str(tmp_path / "backup"), str(server.data_dir)], check=True)
        server.resume()
        again = run_cli("run", str(manifest), "--ledger", url, "--state", str(videos), *sim.engine_args(),
                        cwd=tmp_path)
    assert again.code == 2, str(again)
    assert sim.accepted() == paid + 3, "paid again for what the restore lost"
    assert "lost changes this state directory saw committed" in again.stderr and ".ledger-marks" in again.stderr


def test_a_ledger_url_that_is_not_postgres_is_a_usage_error(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    result = run_cli("status", str(manifest), "--ledger", "mysql://me:secretpw@db/x", cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "postgresql://" in result.stderr and "secretpw" not in result.stderr, str(result)


def test_a_provider_change_is_refused_on_a_postgres_ledger(tmp_path: Path, pg_url: str,
                                                          provider: ProviderFactory) -> None:
    manifest = write_manifest(tmp_path)
    videos = tmp_path / "videos"
    first = run_cli("run", str(manifest), "--ledger", pg_url, "--state", str(videos), "--simulate",
                    "--sim-task-seconds", "0", *FAST, cwd=tmp_path, key=None)
    assert first.code == 0, str(first)
    other = provider()
    refused = run_cli("run", str(manifest), "--ledger", pg_url, "--state", str(videos), *other.engine_args(),
                      cwd=tmp_path)
    assert refused.code == 2 and "--simulate" in refused.stderr, str(refused)
    assert pg_url.split("//")[1] in refused.stderr  # names the ledger by its URL


def test_ledger_copy_moves_a_sqlite_ledger_into_postgres_and_refuses_a_second_time(tmp_path: Path, pg_url: str,
                                                                                  provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    ran = run_cli("run", str(manifest), "--state", str(state), *sim.engine_args(), cwd=tmp_path)
    assert ran.code == 0, str(ran)
    url = _with_password(pg_url)
    copied = run_cli("ledger", "copy", str(state), url, cwd=tmp_path)
    assert copied.code == 0 and "3 jobs" in copied.stdout, str(copied)
    assert PASSWORD not in copied.stdout + copied.stderr
    status = run_cli("status", str(manifest), "--ledger", url, "--state", str(state), "--json", cwd=tmp_path)
    assert json.loads(status.stdout)["counts"]["done"] == 3, str(status)
    again = run_cli("ledger", "copy", str(state), url, cwd=tmp_path)
    assert again.code == 2 and PASSWORD not in again.stderr, str(again)
    stale = run_cli("run", str(manifest), "--state", str(state), *sim.engine_args(), cwd=tmp_path)  # an old cron line
    assert stale.code == 2 and "was copied to" in stale.stderr and PASSWORD not in stale.stderr, str(stale)
    back = run_cli("ledger", "copy", url, str(tmp_path / "back"), cwd=tmp_path)
    assert back.code == 0 and (tmp_path / "back" / "ledger.db").is_file(), str(back)
    on_postgres = run_cli("run", str(manifest), "--ledger", url, "--state", str(state), *sim.engine_args(), cwd=tmp_path)
    assert on_postgres.code == 2 and "runner ledger reopen" in on_postgres.stderr, str(on_postgres)
    assert sim.accepted() == 3


@pytest.mark.parametrize("point", ["ledger-copy-rows", "ledger-copy-moved"])
def test_a_copy_into_postgres_killed_mid_way_is_refused_by_runs_and_started_over(
        tmp_path: Path, pg_url: str, provider: ProviderFactory, point: str) -> None:
    """Killed mid-way, a copy into PostgreSQL left the empty schema, which runs took for a new ledger (and paid
    again for every job the source had paid for); it is marked an unfinished copy until its rows commit."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli("run", str(manifest), "--state", str(state), *sim.engine_args(), cwd=tmp_path).code == 0
    url = _with_password(pg_url)
    killed = run_cli("ledger", "copy", str(state), url, cwd=tmp_path, env={"RUNNER_TEST_CRASH_AT": point})
    assert killed.code == -signal.SIGKILL, str(killed)
    refused = run_cli("run", str(manifest), "--ledger", url, "--state", str(tmp_path / "videos"), *sim.engine_args(),
                      cwd=tmp_path)
    assert refused.code == 2 and "is an unfinished copy of" in refused.stderr, str(refused)
    assert PASSWORD not in refused.stderr and sim.accepted() == 3
    copied = run_cli("ledger", "copy", str(state), url, cwd=tmp_path)
    assert copied.code == 0 and "3 jobs" in copied.stdout, str(copied)
    status = run_cli("status", str(manifest), "--ledger", url, "--state", str(state), "--json", cwd=tmp_path)
    assert json.loads(status.stdout)["counts"]["done"] == 3, str(status)


def test_a_database_without_a_ledger_is_never_read_as_empty_nor_created_by_collect(tmp_path: Path,
                                                                                   pg_url: str) -> None:
    manifest = write_manifest(tmp_path)
    status = run_cli("status", str(manifest), "--ledger", pg_url, cwd=tmp_path)
    assert status.code == 2 and "no runner ledger" in status.stderr and pg_url in status.stderr, str(status)
    collect = run_cli("collect", "--ledger", pg_url, "--state", str(tmp_path / "videos"), cwd=tmp_path)
    assert collect.code == 2 and "nothing was changed" in collect.stderr, str(collect)
    again = run_cli("status", str(manifest), "--ledger", pg_url, cwd=tmp_path)
    assert again.code == 2, str(again)  # collect created nothing


def test_plan_and_export_on_an_empty_database_read_it_as_an_empty_ledger(tmp_path: Path, pg_url: str) -> None:
    """A database no runner has used yet (no schema): ``plan`` sees an empty ledger, as with a state directory that
    has none, and writes nothing to it; ``export`` says there is none, as ``status`` and ``ls`` do (exit 2: it
    exported an empty batch until brief Q, which an hf re-export took as every video no longer exported)."""
    import psycopg

    manifest = write_manifest(tmp_path)
    videos = str(tmp_path / "videos")
    planned = run_cli("plan", str(manifest), "--ledger", pg_url, "--state", videos, "--json", cwd=tmp_path)
    assert planned.code == 0, str(planned)
    assert json.loads(planned.stdout)["to_submit"] == 3 and json.loads(planned.stdout)["ledger"] == pg_url
    exported = run_cli("export", str(manifest), "--ledger", pg_url, "--state", videos, cwd=tmp_path)
    assert exported.code == 2 and exported.stdout == "", str(exported)  # as with an empty state directory
    assert "holds no runner ledger yet" in exported.stderr, str(exported)
    assert "Traceback" not in planned.stderr and "error" not in planned.stderr, str(planned)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('runner_schema')").fetchone() == (None,)  # nothing written


@contextlib.contextmanager
def _tables_on_a_small_disk(pg_server: TempPostgres, url: str, mount: Callable[..., Path]) -> Iterator[Path]:
    """The tables later created in ``url``'s database go to a tablespace on a small tmpfs (owned by the server's
    user, inside the server's directory, which that user can reach); the mount point is yielded."""
    import psycopg

    dbname = url.rsplit("/", 1)[1]
    owner = pg_server.root.stat()
    disk = mount(pg_server.root / f"disk-{dbname}", options=f"uid={owner.st_uid},gid={owner.st_gid},mode=0700")
    try:
        with psycopg.connect(pg_server.url(), autocommit=True) as admin:
            admin.execute(f"CREATE TABLESPACE small_{dbname} LOCATION '{disk}'")
            admin.execute(f'ALTER DATABASE "{dbname}" SET default_tablespace = small_{dbname}')
        yield disk
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(pg_server.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            admin.execute(f"DROP TABLESPACE IF EXISTS small_{dbname}")


def test_a_full_disk_on_the_postgres_server_exits_6_and_the_next_run_pays_nothing_twice(
        tmp_path: Path, pg_server: TempPostgres, pg_url: str, provider: ProviderFactory,
        small_disk: Callable[..., Path]) -> None:
    """The PostgreSQL server's disk that holds the ledger's tables is full (a real one: a tablespace on a full
    tmpfs): the server answers 53100 disk_full, and the run exits 6, as a full disk under a SQLite ledger does,
    naming the server and what to do — not 3, which a systemd unit takes as success. Once space is freed the
    next run finishes the batch, every task paid once and recorded."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    videos = str(tmp_path / "videos")
    with _tables_on_a_small_disk(pg_server, pg_url, small_disk) as disk:
        planned = run_cli("run", str(manifest), "--ledger", pg_url, "--state", videos,
                          *sim.engine_args("--budget", "0"), cwd=tmp_path)
        assert planned.code == 3 and sim.accepted() == 0, str(planned)  # the jobs are in the ledger, none sent
        filler = fill_disk(disk)
        full = run_cli("run", str(manifest), "--ledger", pg_url, "--state", videos, *sim.engine_args(), cwd=tmp_path)
        assert full.code == 6, str(full)
        assert "runner: error:" in full.stderr and "PostgreSQL server" in full.stderr, str(full)
        assert "No space left on device" in full.stderr and "Free space" in full.stderr, str(full)
        assert pg_url.split("//")[1] in full.stderr, str(full)  # names the server and the database
        filler.unlink()
        again = run_cli("run", str(manifest), "--ledger", pg_url, "--state", videos, *sim.engine_args(), cwd=tmp_path)
        assert again.code == 0, str(again)
        status = run_cli("status", str(manifest), "--ledger", pg_url, "--state", videos, "--json", cwd=tmp_path)
        found = {state: n for state, n in json.loads(status.stdout)["counts"].items() if n}
        assert found == {"done": 3}, str(status)
        assert sim.accepted() == 3 and sim.max_per_body() == 1  # nothing paid twice


@pytest.mark.parametrize("command", [["status", "MANIFEST"], ["status", "MANIFEST", "--json"], ["ls", "MANIFEST"],
                                     ["runs"], ["plan", "MANIFEST"], ["run", "MANIFEST", "--simulate"]])
def test_a_ledger_server_that_cannot_be_reached_exits_5_on_one_line_naming_the_url_without_its_password(
    tmp_path: Path, command: list[str]
) -> None:
    """`runner status` exited 3 — "stopped with work outstanding", which a cron or systemd unit takes as success
    (`SuccessExitStatus=3`) — when the ledger's server could not be reached: a monitor of a batch whose database
    was down, or whose URL was wrong, was told all was well, and so was every nightly run, which did nothing. As
    a provider that cannot be reached: exit 5, one line saying what to check, the password nowhere."""
    manifest = write_manifest(tmp_path)
    with socket.socket() as probe:  # a port nothing listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://runner:{PASSWORD}@127.0.0.1:{port}/videos"
    argv = [str(manifest) if part == "MANIFEST" else part for part in command]
    result = run_cli(*argv, "--ledger", url, "--state", str(tmp_path / "videos"), cwd=tmp_path)
    assert result.code == 5, str(result)
    lines = [line for line in result.stderr.splitlines() if "error:" in line]  # a run's header line before it
    assert len(lines) == 1 and "runner: error: cannot connect to the PostgreSQL ledger" in lines[0], str(result)
    assert f"postgresql://runner@127.0.0.1:{port}/videos" in lines[0] and "Check the URL" in lines[0], str(result)
    assert PASSWORD not in result.stderr + result.stdout, str(result)


def test_a_password_in_the_ledger_urls_query_string_is_printed_nowhere(tmp_path: Path, pg_url: str,
                                                                        provider: ProviderFactory) -> None:
    """libpq takes a password in the URL's query string as well (`postgresql://runner@host/db?password=…`, and a
    key percent-encoded, `?pass%77ord=…`). Only `user:password@` was left out: the run's first line (every cron log),
    its record in `runner runs` and the `runner adopt` commands a held-back job is told to paste printed it whole."""
    sim = provider()
    manifest = write_manifest(tmp_path)
    videos = tmp_path / "videos"
    outputs = []
    for spelt in (f"{pg_url}?password={PASSWORD}", f"{pg_url}?sslmode=disable&pass%77ord={PASSWORD}"):
        ran = run_cli("run", str(manifest), "--ledger", spelt, "--state", str(videos), *sim.engine_args(),
                      cwd=tmp_path)
        assert ran.code == 0, str(ran)
        assert pg_url in ran.stderr + ran.stdout, str(ran)  # the URL still named, without its password
        outputs.append(ran)
        runs = run_cli("runs", "--ledger", spelt, "--state", str(videos), cwd=tmp_path)
        assert runs.code == 0, str(runs)
        outputs.append(runs)
    assert sim.accepted() == 3
    for result in outputs:
        assert PASSWORD not in result.stdout + result.stderr, str(result)
