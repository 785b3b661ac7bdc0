"""Scale of the commands an operator types on a big batch: status, ls, export, report, verify, retry, review…

    .venv/bin/python -m bench.ops_scale build --jobs 200000 --dir /tmp/ops200k
    .venv/bin/python -m bench.ops_scale measure --dir /tmp/ops200k
    .venv/bin/python -m bench.ops_scale measure --dir /tmp/ops200k --only status,verify

``build`` plans an N-job manifest (``bench/gen_manifest.py``) into ``DIR/state``, then writes a batch's end
into its ledger with SQL (going through each job's transitions would take hours; what is measured is the
commands that read it): by the job's id modulo 20 — 0-11 done (its video a real simulator MP4 of ~5.6 KB on
disk, read-only, its sha256 and size recorded; 10 accepted in review, 11 rejected with its rejection row),
12-13 failed, 14 in doubt, 15 lost, 16-19 pending (one in 100 of all jobs with a video already at its
output name that no job records: held back, for ``adopt --held-back``); a submit attempt per paid job, a
download attempt per done one, a poll attempt per failed one; 40 finished runs.

``measure`` runs each command as a process of its own on a pseudo-terminal (stdout and stderr both: what an
operator sees), and prints for each: exit code, wall time, CPU, peak RSS (``os.wait4``), the longest silence
on the terminal (from the start, between two writes, or before the end) and what it wrote. Commands that
change the ledger (reject, accept, retry, adopt) run last, on a copy of the state directory each.
``ledger copy`` copies SQLite to SQLite. A benchmark, never a timed assertion.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pty
import select
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from bench.gen_manifest import write_axes
from bench.procs import bytecode, machine, runner_cmd, runner_env

RUNS = 40


def build(n: int, workdir: Path) -> dict[str, Any]:
    from runner.ledger import open_ledger
    from runner.manifest import expand, load_manifest
    from runner.simulator.media import Video

    workdir.mkdir(parents=True, exist_ok=True)
    manifest = write_axes(n, workdir)
    state = workdir / "state"
    spec = load_manifest(manifest)
    started = time.perf_counter()
    with open_ledger(state) as ledger:
        ledger.register(spec.name, spec.digest, expand(spec))
    planned = time.perf_counter() - started
    folder = state / "outputs" / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(state / "ledger.db")
    now = time.time()
    rows = db.execute("SELECT j.id, j.key, t.output FROM jobs j JOIN targets t ON t.job_id = j.id").fetchall()
    done: list[tuple[str, str, int, str, int]] = []
    for job_id, _key, output in rows:
        kind = job_id % 20
        if kind <= 11 or (kind >= 16 and job_id % 100 == 19):
            data = Video(f"sim-{job_id}").read()
            path = folder / output
            path.write_bytes(data)
            path.chmod(0o444)
            if kind <= 11:
                done.append((f"outputs/{spec.name}/{output}", hashlib.sha256(data).hexdigest(), len(data),
                             f"sim-{job_id}", job_id))
    db.execute("BEGIN")
    db.execute("UPDATE jobs SET spent_usd = estimated_usd, attempts = 1, submitted_at = ?, task_id = 'sim-' || id,"
               " state = CASE id % 20 WHEN 12 THEN 'failed' WHEN 13 THEN 'failed' WHEN 14 THEN 'in_doubt'"
               " WHEN 15 THEN 'lost' END, error = CASE WHEN id % 20 IN (12, 13) THEN 'content moderation'"
               " WHEN id % 20 = 14 THEN 'connection reset while sending' WHEN id % 20 = 15 THEN 'url expired' END,"
               " reason = CASE WHEN id % 20 IN (12, 13) THEN 'content moderation' END, finished_at = ?"
               " WHERE id % 20 BETWEEN 12 AND 15", (now - 3600, now - 60))
    db.execute("UPDATE jobs SET task_id = NULL WHERE state = 'in_doubt'")
    db.executemany("UPDATE jobs SET state = 'done', path = ?, sha256 = ?, bytes = ?, task_id = ?, attempts = 1,"
                   " spent_usd = estimated_usd, submitted_at = 0, finished_at = 0 WHERE id = ?", done)
    db.execute("UPDATE jobs SET submitted_at = ?, finished_at = ? WHERE state = 'done'", (now - 3600, now - 60))
    db.execute("UPDATE jobs SET review = 'accepted' WHERE id % 20 = 10")
    db.execute("UPDATE jobs SET review = 'rejected' WHERE id % 20 = 11")
    db.execute("INSERT INTO rejections (key, sample, reason, rejected_at, task_id, path, sha256, bytes)"
               " SELECT key, sample, 'blurry', ?, task_id, path, sha256, bytes FROM jobs WHERE review = 'rejected'",
               (now - 30,))
    for i in range(RUNS):
        db.execute("INSERT INTO runs (pid, host, argv, started_at, ended_at, exit_code, counts_json)"
                   " VALUES (?, 'bench', ?, ?, ?, 3, ?)",
                   (1000 + i, json.dumps(["runner", "run", str(manifest)]), now - 7200 + i * 100,
                    now - 7200 + i * 100 + 90, json.dumps({"done": i})))
    db.execute("INSERT INTO attempts (key, kind, started_at, ended_at, outcome, task_id, http_status, run_id)"
               " SELECT key, 'submit', submitted_at, submitted_at, CASE state WHEN 'in_doubt' THEN 'ambiguous'"
               " ELSE 'accepted' END, task_id, 200, 1 FROM jobs WHERE state != 'pending'")
    db.execute("INSERT INTO attempts (key, kind, started_at, ended_at, outcome, run_id)"
               " SELECT key, CASE state WHEN 'done' THEN 'download' ELSE 'poll' END, finished_at, finished_at,"
               " CASE state WHEN 'done' THEN 'stored' ELSE state END, 1 FROM jobs WHERE state IN ('done', 'failed', 'lost')")
    db.execute("COMMIT")
    counts = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    db.close()
    return {"N": n, "manifest": str(manifest), "state": str(state), "plan_s": round(planned, 1), "counts": counts,
            "held_back_files": sum(1 for i, _, _ in rows if i % 20 >= 16 and i % 100 == 19)}


def _on_tty(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` with a pseudo-terminal as its stdout and stderr: its figures and its longest silence."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.chdir(cwd)
        os.execve(cmd[0], cmd, env)
    start = last = time.perf_counter()
    silence, written, tail = 0.0, 0, b""
    status = 0
    usage: Any = None
    while True:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if chunk:
                now = time.perf_counter()
                silence = max(silence, now - last)
                last = now
                written += len(chunk)
                tail = (tail + chunk)[-600:]
        done_pid, status, usage = os.wait4(pid, os.WNOHANG)
        if done_pid:
            break
        if time.perf_counter() - start > timeout:
            os.kill(pid, 9)
            done_pid, status, usage = os.wait4(pid, 0)
            break
    wall = time.perf_counter() - start
    try:
        while select.select([fd], [], [], 0.1)[0]:  # what it wrote just before it ended
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            written += len(chunk)
            tail = (tail + chunk)[-600:]
    except OSError:
        pass
    os.close(fd)
    silence = max(silence, time.perf_counter() - last if written == 0 else wall - (last - start))
    return {"exit": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "longest_silence_s": round(silence, 2), "tty_bytes": written,
            "last_line": tail.decode(errors="replace").strip().splitlines()[-1][:160] if tail.strip() else ""}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _copy_state(workdir: Path, name: str) -> Path:
    dest = workdir / name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(workdir / "state", dest, symlinks=True)
    return dest


def _commands(workdir: Path) -> list[tuple[str, Any]]:
    """(name, argv or a callable giving argv) in order; the ones that write the ledger on copies of it."""
    m, st, out = str(workdir / "bench.yaml"), str(workdir / "state"), workdir / "out"
    return [
        ("status", ["status", m, "--state", st]),
        ("status --json", ["status", m, "--state", st, "--json"]),
        ("ls > file", ["ls", m, "--state", st]),
        ("ls --only failed", ["ls", m, "--state", st, "--only", "failed"]),
        ("runs", ["runs", "--state", st]),
        ("export jsonl", ["export", m, "--state", st, "--to", str(out / "jobs.jsonl")]),
        ("export csv", ["export", m, "--state", st, "--format", "csv", "--to", str(out / "jobs.csv")]),
        ("export hf", ["export", m, "--state", st, "--format", "hf", "--to", str(out / "hf")]),
        ("report", ["report", m, "--state", st, "--to", str(out / "report")]),
        ("verify --check-only", ["verify", m, "--state", st, "--check-only"]),
        ("retry --failed --dry-run", ["retry", m, "--state", st, "--failed", "--dry-run"]),
        ("retry --in-doubt --dry-run", ["retry", m, "--state", st, "--in-doubt", "--dry-run"]),
        ("adopt --held-back --dry-run", ["adopt", m, "--state", st, "--held-back", "--dry-run"]),
        ("ledger copy sqlite", lambda: ["ledger", "copy", str(_copy_state(workdir, "state-copysrc")),
                                        str(workdir / "state-copied")]),
        ("reject PREFIX (<50 jobs)", lambda: ["reject", m, "000", "--reason", "bench", "--state",
                                          str(_copy_state(workdir, "state-w"))]),
        ("accept PREFIX (<50 jobs)", ["accept", m, "001", "--state", str(workdir / "state-w")]),
        ("retry --failed", ["retry", m, "--state", str(workdir / "state-w"), "--failed", "--budget", "none"]),
        ("adopt --held-back", ["adopt", m, "--state", str(workdir / "state-w"), "--held-back"]),
    ]


def measure_all(workdir: Path, only: set[str] | None, timeout: float) -> list[dict[str, Any]]:
    env = runner_env(COLUMNS="120", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    (workdir / "out").mkdir(exist_ok=True)
    results = []
    for name, argv in _commands(workdir):
        if only is not None and name.split()[0] not in only and name not in only:
            continue
        shutil.rmtree(workdir / "state-copied", ignore_errors=True)
        args = argv() if callable(argv) else argv
        fig = {"command": name, **_on_tty(runner_cmd(*args), env, workdir, timeout)}
        for produced in ("jobs.jsonl", "jobs.csv", "hf", "report"):
            if name.endswith(produced.split(".")[-1]) and (workdir / "out" / produced).exists():
                fig["output_mib"] = round(_size(workdir / "out" / produced) / 2**20, 1)
        if name == "report" and (workdir / "out" / "report" / "index.html").exists():
            fig["index_html_mib"] = round((workdir / "out" / "report" / "index.html").stat().st_size / 2**20, 1)
        print(json.dumps(fig), flush=True)
        results.append(fig)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["build", "measure"])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--only", default=None, help="comma-separated command names (status, export, ...)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    print(machine(), flush=True)
    if args.mode == "build":
        print(json.dumps(build(args.jobs, args.dir)), flush=True)
        return
    bytecode()
    measure_all(args.dir, set(args.only.split(",")) if args.only else None, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
