"""Start-up of whole `runner` processes (issue 14): ``--version``, ``--help``, ``plan`` of the demo.

    .venv/bin/python -m bench.startup [--runs 20] [--json FILE] [--against DIR]

Each command runs ``--runs`` times as a whole process (the ``runner`` console script next to this
interpreter, as a user types it); the figures are the median and the fastest wall time. The baseline,
measured in the same run and interleaved with them, is the interpreter alone (``python -c pass``, with
site and the editable install's finder): what no lazy import can remove. Each figure also gives the
median CPU time of the process (``os.wait4``), which a busy machine inflates less than wall time.
``--against DIR`` adds the same commands run from another checkout (``python -m runner`` with
``PYTHONPATH=DIR``, same interpreter and packages), and this tree's as ``python -m runner`` too, so the
two compare like for like in one interleaved run. ``--imports`` adds what importing costs, as whole processes:
the naive script's imports (``bench/naive.py``), every module of ``runner run``'s import path that is not the
runner's own (its dependencies and the standard library, imported in the order the run imports them) and the
run's whole import path; the runner's own share is the difference of the last two. A benchmark, not a test:
``tests/unit/test_cli_lazy.py`` asserts which modules ``--version`` and ``--help`` import, never a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import REPO, machine

TARGETS = {"--version": 0.100, "--help": 0.100, "plan demo": 0.250}
#: What ``runner/_entry.py`` sets before the CLI is imported (the run path is imported as the executable does).
ENTRY = ("import os, sys; os.environ.setdefault('PYDANTIC_DISABLE_PLUGINS', '__all__');"
         " sys.modules['httpx._main'] = None\n")
NAIVE_IMPORTS = "import argparse, csv, http.client, json, os, queue, sqlite3, sys, threading, time, urllib.parse"


def _dependencies_of_run(env: dict[str, str], cwd: str) -> list[str]:
    """The modules ``import runner.cli.run`` loads that are not the runner's own, in the order it loads them."""
    code = (ENTRY + "before = set(sys.modules)\nimport runner.cli.run\n"
            "print(' '.join(m for m in sys.modules if m not in before and m.split('.')[0] != 'runner'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.split()


def _import_commands(env: dict[str, str], cwd: str) -> dict[str, list[str]]:
    modules = _dependencies_of_run(env, cwd)
    dependencies = (ENTRY + "import importlib\nfor name in " + repr(modules) + ":\n"
                    "    try:\n        importlib.import_module(name)\n    except ImportError:\n        pass\n")
    return {
        "imports: the naive script's": [sys.executable, "-c", NAIVE_IMPORTS],
        f"imports: run's dependencies ({len(modules)} modules)": [sys.executable, "-c", dependencies],
        "imports: run's whole path": [sys.executable, "-c", ENTRY + "import runner.cli.run"],
    }


def _time(cmd: list[str], env: dict[str, str], cpu: list[float] | None = None, cwd: str | None = None) -> float:
    """Wall time of one whole process; its CPU time (user + system, from ``os.wait4``) appended to ``cpu``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {os.waitstatus_to_exitcode(status)}")
    if cpu is not None:
        cpu.append(usage.ru_utime + usage.ru_stime)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout of runner (e.g. `git archive <commit>` unpacked): its commands are run"
                             " interleaved with these, with the same interpreter (PYTHONPATH), as a baseline")
    parser.add_argument("--imports", action="store_true",
                        help="also the CPU of imports: the naive script's, run's dependencies, run's whole path")
    args = parser.parse_args()
    script = str(Path(sys.executable).with_name("runner"))
    # As installed: bytecode cached (pip compiles on install; this machine's shells set PYTHONDONTWRITEBYTECODE,
    # which would recompile every module on every start). The warm-up run below writes the .pyc files.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNNER_", "NOVITA_")) and k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "--version": [script, "--version"],
            "--help": [script, "--help"],
            "plan demo": [script, "plan", str(REPO / "manifests" / "demo.yaml"), "--state", tmp],
        }
        if args.imports:
            commands.update(_import_commands(env, tmp))
        envs = {name: env for name in commands}
        if args.against is not None:
            other = {**env, "PYTHONPATH": str(args.against.resolve())}
            for name in ("--version", "--help", "plan demo"):
                commands[f"{name} (against)"] = [sys.executable, "-m", "runner", *commands[name][1:]]
                envs[f"{name} (against)"] = other
                commands[f"{name} (python -m)"] = [sys.executable, "-m", "runner", *commands[name][1:]]
                envs[f"{name} (python -m)"] = env
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        # ``python -m`` from a neutral directory: the current one would come first on sys.path.
        cwd = {name: tmp if (name.endswith(")") and "baseline" not in name) or name.startswith("imports")
               else None for name in commands}
        for name, cmd in commands.items():  # warm the page cache and the .pyc files once
            _time(cmd, envs[name], cwd=cwd[name])
        load_before = os.getloadavg()[0]
        for _ in range(args.runs):
            for name, cmd in commands.items():  # interleaved: noise hits every command alike
                times[name].append(_time(cmd, envs[name], cpus[name], cwd[name]))
        load_after = os.getloadavg()[0]
    base = statistics.median(times["python -c pass (baseline)"])
    figures = {
        name: {"median_ms": round(statistics.median(ts) * 1000, 1), "min_ms": round(min(ts) * 1000, 1),
               "median_cpu_ms": round(statistics.median(cpus[name]) * 1000, 1),
               "median_over_baseline": round(statistics.median(ts) / base, 2),
               "target_ms": None if name not in TARGETS else TARGETS[name] * 1000,
               "met_by_median": None if name not in TARGETS else statistics.median(ts) <= TARGETS[name]}
        for name, ts in times.items()
    }
    result = {"machine": machine(), "runs": args.runs, "load_avg_before_after": [load_before, load_after],
              "figures": figures}
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
