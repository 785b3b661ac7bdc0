"""Scale: `runner plan`, planning into the ledger and a no-op resume at 100k and 1M jobs; run-loop RSS.

    .venv/bin/python -m bench.scale plan --jobs 100000,1000000
    .venv/bin/python -m bench.scale plan --jobs 1000000 --against /tmp/old   # step 2 also with other code
    .venv/bin/python -m bench.scale loop --jobs 10000,100000 --seconds 60
    .venv/bin/python -m bench.scale batch --jobs 100000 --concurrency 1000 --task-seconds 1

``plan`` mode, for each N (manifest from ``bench/gen_manifest.py``: two crossed
value files):

1. ``runner plan --json`` on an empty state directory — time and peak RSS;
2. planning the N jobs into the ledger (``Ledger.register`` over ``expand``,
   what the first ``runner run`` does before submitting) — time and peak RSS;
3. marking every job done: a direct SQL ``UPDATE`` on the ledger (a fake: going
   through the four transitions per job would take hours and is not what is
   measured here);
4. ``runner plan --json`` again, now that every key is looked up and found done;
5. a no-op resume: ``runner run`` on the all-done manifest (the base URL points
   at a closed port — nothing may be sent) — time, peak RSS, exit code 0.

``--against DIR`` runs step 2 a second time, right after the first, with another checkout of runner
(``PYTHONPATH=DIR``, same interpreter and packages) into a new ledger of its own: the code before a change,
measured in the same minutes (``register_against``), and step 5 twice more with each tree in turn, the
other checkout first, on the same done ledger (``noop_resume_ab``).

``loop`` mode, for each N: plan N jobs into a fresh ledger (outside the
measured process), then ``runner run`` against a simulator subprocess (tasks
take 0 s) for ``--seconds`` (``--max-runtime``); the figure is that process's
peak RSS, to compare 10k with 100k. Time and RSS are the child's own
(``os.wait4``). ``batch`` mode: N jobs planned outside the measured process, then
run to the end at ``--concurrency`` against a simulator whose tasks take
``--task-seconds`` (4 KB videos); efficiency is ⌈N/C⌉·T over the whole process's
wall time, and the runner's RSS is sampled every second with the jobs done so
far (the peak per tenth of the batch shows whether memory grows; eleven samples
spread over the run are printed, all of them written to ``rss_samples.json`` in
the work directory). A benchmark, never a timed assertion.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.gen_manifest import write_axes
from bench.procs import Measured, SimProcess, machine, measure, runner_cmd, runner_env


def _register(manifest: str, state: str) -> None:
    """Child process: plan ``manifest`` into ``state``'s ledger, as `runner run` does first."""
    from runner.ledger import open_ledger
    from runner.manifest import expand, load_manifest

    spec = load_manifest(Path(manifest))
    with open_ledger(Path(state)) as ledger:
        total = ledger.register(spec.name, spec.digest, expand(spec))
    print(total)


def _mark_all_done(state: Path) -> float:
    started = time.perf_counter()
    db = sqlite3.connect(state / "ledger.db")
    try:
        db.execute("BEGIN")
        db.execute(
            "UPDATE jobs SET state = 'done', task_id = 'fake-' || id, attempts = 1, spent_usd = estimated_usd,"
            " path = 'outputs/fake/' || key || '.mp4', sha256 = '0', bytes = 1, finished_at = updated_at")
        db.execute("COMMIT")
    finally:
        db.close()
    return time.perf_counter() - started


def _fig(m: Any) -> dict[str, Any]:
    return {"exit": m.code, "wall_s": round(m.wall_s, 2), "cpu_s": round(m.cpu_s, 2), "max_rss_mib": round(m.max_rss_mib, 1)}


def plan_mode(n: int, workdir: Path, against: Path | None = None) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = write_axes(n, workdir)
    state = workdir / "state"
    env = runner_env()
    out: dict[str, Any] = {"N": n}
    out["plan_empty_ledger"] = _fig(measure(runner_cmd("plan", str(manifest), "--state", str(state), "--json"),
                                            env=env, log=workdir / "plan.log", stdout=workdir / "plan1.json"))
    out["register"] = _fig(measure([sys.executable, "-m", "bench.scale", "_register", str(manifest), str(state)],
                                   env=env, log=workdir / "register.log", stdout=workdir / "register.out"))
    if against is not None:
        out["register_against"] = _fig(measure(
            [sys.executable, "-m", "bench.scale", "_register", str(manifest), str(workdir / "state-against")],
            env=runner_env(PYTHONPATH=str(against.resolve())), log=workdir / "register-against.log",
            stdout=workdir / "register-against.out", cwd=workdir))  # not the repo: it would come first on sys.path
        out["register_against"]["tree"] = str(against)
    out["mark_done_sql_s"] = round(_mark_all_done(state), 2)
    out["plan_all_done"] = _fig(measure(runner_cmd("plan", str(manifest), "--state", str(state), "--json"),
                                        env=env, log=workdir / "plan.log", stdout=workdir / "plan2.json"))
    plan2 = json.loads((workdir / "plan2.json").read_text() or "{}")
    out["plan_all_done"]["counts_done"] = plan2.get("counts", {}).get("done")
    resume = runner_cmd("-q", "run", str(manifest), "--state", str(state), "--base-url", "http://127.0.0.1:9",
                        "--rpm", "none")
    out["noop_resume"] = _fig(measure(resume, env=env, log=workdir / "resume.log"))
    if against is not None:  # the same done ledger, each tree in turn (A B A B): a resume reads, never writes jobs
        runs: dict[str, list[dict[str, Any]]] = {"this tree": [], "against": []}
        for _ in range(2):
            runs["against"].append(_fig(measure(resume, env=runner_env(PYTHONPATH=str(against.resolve())),
                                                log=workdir / "resume-against.log", cwd=workdir)))
            runs["this tree"].append(_fig(measure(resume, env=env, log=workdir / "resume.log")))
        out["noop_resume_ab"] = runs
    return out


def _planned(n: int, workdir: Path) -> tuple[Path, Path, dict[str, str], Measured]:
    """An N-job manifest in ``workdir`` planned into ``workdir/state`` by a process of its own (not measured
    with the run): the manifest, the state directory, the runner's environment and the planning's figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = write_axes(n, workdir)
    state = workdir / "state"
    env = runner_env()
    reg = measure([sys.executable, "-m", "bench.scale", "_register", str(manifest), str(state)], env=env,
                  log=workdir / "register.log")
    return manifest, state, env, reg


def loop_mode(n: int, seconds: float, workdir: Path, concurrency: int) -> dict[str, Any]:
    manifest, state, env, reg = _planned(n, workdir)
    with SimProcess({"task_seconds": 0, "balance_usd": None}, log=workdir / "sim.log") as sim:
        m = measure(runner_cmd("-q", "run", str(manifest), "--state", str(state), "--base-url", sim.base_url,
                               "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.05",
                               "--concurrency", str(concurrency), "--max-runtime", str(seconds)),
                    env=env, log=workdir / "runner.log", timeout=seconds + 300)
    db = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)
    try:
        done = db.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0]
    finally:
        db.close()
    return {"N": n, "register_wall_s": round(reg.wall_s, 2), "run": _fig(m), "done_in_run": done,
            "jobs_per_s": round(done / m.wall_s, 1)}


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _done(state: Path) -> int:
    db = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0])
    except sqlite3.Error:
        return -1
    finally:
        db.close()


def batch_mode(n: int, concurrency: int, task_s: float, workdir: Path, timeout: float) -> dict[str, Any]:
    """N jobs planned outside the measured process, then run to the end at ``concurrency`` against a simulator
    whose tasks take ``task_s``; the runner's RSS is sampled every second with the jobs done so far."""
    manifest, state, env, reg = _planned(n, workdir)
    samples: list[tuple[float, int, float]] = []  # (seconds since start, jobs done, RSS MiB)
    with SimProcess({"task_seconds": task_s, "video_bytes": 4096, "balance_usd": None}, log=workdir / "sim.log") as sim, \
            (workdir / "runner.log").open("a") as log:
        cmd = runner_cmd("-q", "run", str(manifest), "--state", str(state), "--base-url", sim.base_url,
                         "--rpm", "none", "--concurrency", str(concurrency))
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter() - start
            if now > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            rss = _rss_mib(proc.pid)
            if rss is not None:
                samples.append((round(now, 1), _done(state), round(rss, 1)))
            time.sleep(1.0)
        wall = time.perf_counter() - start
    done = _done(state)
    ideal = math.ceil(n / concurrency) * task_s
    (workdir / "rss_samples.json").write_text(json.dumps(samples) + "\n")  # (s, jobs done, RSS MiB) every second
    over_time = [samples[i * (len(samples) - 1) // 10] for i in range(11)] if samples else []
    by_tenth: dict[int, float] = {}
    for _, finished, rss in samples:  # peak RSS in each tenth of the jobs done
        tenth = min(9, max(0, finished) * 10 // n)
        by_tenth[tenth] = max(by_tenth.get(tenth, 0.0), rss)
    return {"N": n, "C": concurrency, "T": task_s, "ideal_s": ideal, "exit": os.waitstatus_to_exitcode(status),
            "done": done, "register_wall_s": round(reg.wall_s, 2), "process_wall_s": round(wall, 2),
            "efficiency_process": round(ideal / wall, 3), "runner_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "cpu_ms_per_job": round((usage.ru_utime + usage.ru_stime) * 1000 / max(done, 1), 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "peak_rss_mib_by_tenth_done": [by_tenth.get(i) for i in range(10)],
            "rss_over_time_s_done_mib": over_time}


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_register":
        _register(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["plan", "loop", "batch"])
    parser.add_argument("--jobs", default=None, help="comma-separated N (plan: 100000,1000000; loop: 10000,100000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="loop: --max-runtime of the run")
    parser.add_argument("--concurrency", type=int, default=16, help="loop: 16; batch: e.g. 1000")
    parser.add_argument("--task-seconds", type=float, default=1.0, help="batch: the simulator's task time")
    parser.add_argument("--timeout", type=float, default=3600.0, help="batch: kill the run after this many seconds")
    parser.add_argument("--against", type=Path, default=None,
                        help="plan: another checkout of runner (e.g. the code before a change) to register with too")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    print(f"machine: {machine()}")
    sizes = [int(x) for x in (args.jobs or {"plan": "100000,1000000", "loop": "10000,100000", "batch": "100000"}[args.mode]).split(",")]
    figures = []
    for n in sizes:
        if args.mode == "batch":
            fig = batch_mode(n, args.concurrency, args.task_seconds, workdir / f"batch-{n}", args.timeout)
        else:
            fig = (plan_mode(n, workdir / f"plan-{n}", args.against) if args.mode == "plan"
                   else loop_mode(n, args.seconds, workdir / f"loop-{n}", args.concurrency))
        print(json.dumps(fig))
        figures.append(fig)
    print(f"workdir {workdir}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
