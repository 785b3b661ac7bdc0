"""Crash harness: a real simulator process, a real runner process, real signals.

Used by ``tests/acceptance/test_crash.py`` (a handful of kills, in ``make test``)
and ``bench/crash.py`` (100+ kills over 300 jobs, figures for the README).

The verdict comes from two independent books: the simulator's accounting of
every task it created (and billed), and the runner's ledger.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

EVERY_FAULT = {
    "p_rate_limit": 0.05,
    "p_rate_limit_no_retry_after": 0.03,
    "p_create_failed": 0.05,
    "p_gateway": 0.02,
    "p_drop": 0.02,
    "p_slow": 0.02,
    "slow_seconds": 3.0,
    "p_malformed": 0.01,
    "p_task_failed": 0.03,
    "p_poll_error": 0.05,
    "p_truncated": 0.05,
    "p_expired_url": 0.05,
    "retry_after": 0.05,
}
# Faults that can make a submit ambiguous; a graceful stop must add no in-doubt job beyond these.
AMBIGUOUS_FAULTS = ("p_gateway", "p_drop", "p_slow", "p_malformed")


@dataclass
class Verdict:
    jobs: int
    accepted_total: int
    paid_duplicates: int  # tasks beyond one per job for a body
    unrecorded_paid: int  # tasks the simulator billed that the ledger neither recorded nor counts in doubt
    in_doubt: int
    lost: int
    failed: int
    done: int
    files_verified: int
    files_bad: int
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class CrashHarness:
    def __init__(self, workdir: Path, *, jobs: int, faults: dict[str, float], seed: int = 0,
                 task_seconds: float = 0.3, concurrency: int = 8, read_timeout: float = 1.5) -> None:
        self.workdir = workdir
        self.jobs = jobs
        self.faults = faults
        self.seed = seed
        self.task_seconds = task_seconds
        self.concurrency = concurrency
        self.read_timeout = read_timeout
        self.rng = random.Random(seed)
        self.state = workdir / "state"
        self.manifest = workdir / "crash.yaml"
        self.sim: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.last_kill_landed = False  # did the last run_once signal a live runner?
        self.extra_args: list[str] = []  # appended to the runner's command line (bench knobs)

    # ----------------------------------------------------------- processes
    def __enter__(self) -> CrashHarness:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_manifest()
        self._start_simulator()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sim is not None:
            self.sim.terminate()
            try:
                self.sim.wait(10)
            except subprocess.TimeoutExpired:
                self.sim.kill()

    def _write_manifest(self) -> None:
        rows = "\n".join(f"      - {{i: {i}}}" for i in range(self.jobs))
        self.manifest.write_text(
            "name: crash\n"
            "prompt: \"crash test clip number {i}\"\n"
            "matrix:\n"
            "  rows:\n"
            f"{rows}\n"
            "output: \"{i}.mp4\"\n"
            f"max_jobs: {max(self.jobs, 1000)}\n",
            encoding="utf-8",
        )

    def _start_simulator(self) -> None:
        config = {"task_seconds": self.task_seconds, "seed": self.seed, **self.faults}
        log_path = self.workdir / "simulator.log"
        with log_path.open("w") as log:  # a file, not a pipe: a chatty simulator must never block
            self.sim = subprocess.Popen(
                [sys.executable, "-m", "runner.simulator", "--port", "0", "--config", json.dumps(config)],
                stdout=log, stderr=subprocess.STDOUT, text=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in log_path.read_text().splitlines():
                if "listening on" in line:
                    self.base_url = line.strip().rsplit(" ", 1)[-1]
                    return
            if self.sim.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the simulator did not start:\n{log_path.read_text()}")

    def runner_cmd(self) -> list[str]:
        return [
            sys.executable, "-m", "runner", "-q", "run", str(self.manifest), "--state", str(self.state),
            "--base-url", self.base_url, "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.05",
            "--concurrency", str(self.concurrency), *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        return {**os.environ, "NOVITA_API_KEY": "crash-test-key", "RUNNER_READ_TIMEOUT": str(self.read_timeout)}

    def run_once(self, *, kill_after: float | None, sig: int = signal.SIGKILL, timeout: float = 120) -> int | None:
        """Start the runner; send ``sig`` after ``kill_after`` seconds. Returns its exit code."""
        log_path = self.workdir / "runner.log"
        with log_path.open("a") as log:  # a file, not a pipe: the runner must never block on stderr
            log.write(f"--- run (kill after {kill_after}, signal {sig})\n")
            log.flush()
            proc = subprocess.Popen(self.runner_cmd(), env=self.env(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log, text=True)
        self.last_kill_landed = False
        try:
            if kill_after is not None:
                try:
                    proc.wait(kill_after)
                except subprocess.TimeoutExpired:
                    proc.send_signal(sig)
                    self.last_kill_landed = True
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        # -SIGTERM: the signal came before the runner installed its handler (start-up, planning).
        if proc.returncode not in (0, 1, 3, 4, -signal.SIGKILL, -signal.SIGTERM):
            tail = log_path.read_text()[-4000:]
            raise AssertionError(f"runner exited {proc.returncode}:\n{tail}")
        return proc.returncode

    # ------------------------------------------------------------- verdict
    def sim_stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_sim/stats", timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def ledger_rows(self) -> list[dict[str, Any]]:
        if not (self.state / "ledger.db").exists():
            return []
        db = sqlite3.connect(f"file:{self.state / 'ledger.db'}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in db.execute("SELECT * FROM jobs")]
        finally:
            db.close()

    def verdict(self) -> Verdict:
        stats = self.sim_stats()
        rows = self.ledger_rows()
        by_body: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            body = json.loads(row["request_json"])
            digest = hashlib.sha256(
                json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            ).hexdigest()
            by_body.setdefault(digest, []).append(row)
        recorded = {row["task_id"] for row in rows if row["task_id"]}
        # With in-doubt jobs held and no job-level retries, a job may own one paid task at most.
        duplicates = sum(
            max(0, accepted - len(by_body.get(digest, []))) for digest, accepted in stats["accepted_by_body"].items()
        )
        # A task the simulator billed but the ledger never recorded must be owned by an in-doubt job.
        unrecorded_by_body: dict[str, int] = {}
        for task_id, task in stats["tasks"].items():
            if task_id not in recorded:
                unrecorded_by_body[task["body_sha256"]] = unrecorded_by_body.get(task["body_sha256"], 0) + 1
        unrecorded = sum(
            # A row still `submitting` (its runner was killed mid-POST) becomes in_doubt at the next start.
            max(0, n - sum(1 for row in by_body.get(digest, []) if row["state"] in ("in_doubt", "submitting")))
            for digest, n in unrecorded_by_body.items()
        )
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        verified = bad = 0
        for row in rows:
            if row["state"] != "done":
                continue
            data = (self.state / row["path"]).read_bytes()
            served = stats["tasks"].get(row["task_id"], {}).get("video_sha256")
            if hashlib.sha256(data).hexdigest() == row["sha256"] == served:
                verified += 1
            else:
                bad += 1
        return Verdict(
            jobs=len(rows), accepted_total=stats["accepted_total"], paid_duplicates=duplicates,
            unrecorded_paid=unrecorded, in_doubt=counts.get("in_doubt", 0), lost=counts.get("lost", 0),
            failed=counts.get("failed", 0), done=counts.get("done", 0), files_verified=verified, files_bad=bad,
            counts=counts,
        )

    def torture(self, *, kills: int, signals: tuple[int, ...] = (signal.SIGKILL,), max_after: float = 2.5,
                min_after: float = 0.3) -> tuple[Verdict, list[int | None]]:
        """Kill the runner ``kills`` times at random instants, then let it finish; return the verdict."""
        codes: list[int | None] = []
        for _ in range(kills):
            sig = self.rng.choice(signals)
            codes.append(self.run_once(kill_after=self.rng.uniform(min_after, max_after), sig=sig))
        for _ in range(20):  # then run to completion
            code = self.run_once(kill_after=None)
            codes.append(code)
            if code in (0, 1, 4):
                break
        return self.verdict(), codes
