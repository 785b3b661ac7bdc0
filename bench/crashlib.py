"""Crash harness: a real simulator process, real runner processes, real signals.

Used by ``tests/acceptance/test_crash.py`` (a handful of kills, in ``make test``),
``tests/acceptance/test_crash_multihost.py`` (three runners on one PostgreSQL ledger),
``tests/acceptance/test_crash_i2v.py`` (an image-to-video batch) and ``bench/crash.py`` (100+
kills over 300 jobs, figures for the README).

One runner on a SQLite ledger in ``state/`` is the default. With ``ledger_url`` (a PostgreSQL
ledger) and ``runners=N``, :meth:`CrashHarness.swarm_torture` keeps N runner processes working on
the one batch, killing a random one at random instants and starting it again; the simulator's
``max_active_by_account`` then tells whether all of them together kept to the concurrency limit.

The verdict comes from two independent books: the simulator's accounting of
every task it created (and billed), and the runner's ledger.

On top of kills and faults, :meth:`CrashHarness.operator_torture` does what
operators and operating systems do: SIGHUP (an ssh session dropping), SIGQUIT,
SIGSTOP/SIGCONT pauses longer than the read timeout (Ctrl-Z, a frozen VM), the
manifest edited between runs (prompts changed, jobs dropped, jobs added),
the same manifest run from another working directory, the state folder moved
under an unchanged cron line and the manifest copied to another folder and run
there (:mod:`bench.crashmoves`: refused, nothing paid); then a final clean
``collect``. Its :class:`OperatorVerdict` adds what only the end can tell:
paid videos without a file, the spend by the simulator's books, and whether
the (distinctive, fake) API key reached any file or any output.

With ``i2v=True`` the batch is image-to-video (``kling-v3.0-std-i2v``): the rows name input images,
local files the harness writes (sent inline) or URLs (:mod:`bench.crashimages`), and an operator
round may also edit, rename or take away an image, before or during a run. The books are compared
body by body as the runner sends them (:mod:`bench.crashbooks`): a ledger row's digest is that of
its wire body, rebuilt by the runner's own code from its stored request.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import crashmoves
from bench.crashbooks import ArchivedInputs, judge_books
from bench.crashimages import MODEL as I2V_MODEL
from bench.crashimages import InputImages
from runner import endpoints

SWARM_SIGNALS = (signal.SIGKILL, signal.SIGTERM)

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
    "retry_after_header": True,
}
# Faults that can make a submit ambiguous; a graceful stop must add no in-doubt job beyond these.
AMBIGUOUS_FAULTS = ("p_gateway", "p_drop", "p_slow", "p_malformed")

# A fake key nobody would type by accident: found anywhere under the state dir or in any output, it leaked.
FAKE_KEY = "sk-crash-FAKE-7f3a9c1e5b2d4a6880e1"

# Stop signals an operator or the OS sends; each must leave the ledger consistent.
OPERATOR_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

# Runs from another working directory pass only the absolute manifest path, as an operator does: the
# default state directory is found by walking up from the manifest's folder (issue 9 item 2).
DEFAULT_STATE_FOLLOWS_MANIFEST = True

PRICE_PER_SECOND = {False: 0.112, True: 0.168}  # USD per output second, without / with sound (runner/pricing.py)
T2V_MODEL = "kling-v3.0-pro-t2v"  # the manifests' default model


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
    billed_unrecorded: int = 0  # billed tasks whose id the ledger never recorded (each held by an in-doubt job)
    unjudged: int = 0  # rows whose wire body could not be rebuilt (their input files found nowhere): see crashbooks

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class OperatorVerdict:
    """What the end of an operator torture tells, from the simulator's books and the state dir."""

    verdict: Verdict
    paid_without_file: int  # billed, finished videos of the manifest's jobs with no verified file, not in doubt
    orphaned_without_file: int  # the same for jobs an edit dropped from the manifest (issue 9 item 6)
    held_in_doubt: int  # billed videos whose job is held in doubt (the operator's decision)
    outstanding: int  # jobs of the current manifest not finished (pending, submitting, running, succeeded)
    spent_usd: float  # the estimated price of every task the simulator billed
    key_leaks: list[str]  # files and outputs holding the API key
    rounds: dict[str, int] = field(default_factory=dict)  # what was done to the runner, by kind
    codes: list[int | None] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "verdict": self.verdict.as_dict()}


@dataclass
class SwarmResult:
    """What :meth:`CrashHarness.swarm_torture` did and found."""

    landed: Counter[str] = field(default_factory=Counter)  # signals that hit a live runner, by name
    kill_points: list[float] = field(default_factory=list)  # the batch's progress (0..1) at each kill
    starts: int = 0  # runner processes started
    codes: list[int | None] = field(default_factory=list)
    worst_duplicates: int = 0  # the worst paid-duplicate count seen after any kill
    worst_unrecorded: int = 0
    ran_out: bool = False  # every job finished before enough kills landed
    kill_phase_s: float = 0.0  # from the first start to the last kill
    finish_s: float = 0.0  # from the last kill to the end of the last runner
    max_outstanding: int = 0  # the provider's peak of this key's outstanding tasks
    max_answered: int = 0  # ...of those whose id was answered at once (see CrashHarness.max_outstanding)
    verdict: Verdict | None = None


@dataclass
class RunnerProcess:
    """One runner process of :meth:`CrashHarness.start_runner`."""

    proc: subprocess.Popen[str]
    kill_at: float | None  # monotonic instant of its signal (None: never)
    sig: int
    log: Path
    log_offset: int = 0  # where this process's output starts in ``log``
    reaped: bool = False
    delay: float | None = None  # a kill delay whose clock starts when the runner's lease shows


def price_of(body: dict[str, Any], model: str | None = None) -> float:
    """The estimated price of one stored request (what ``--budget`` counts); ``model``: by the runner's price rule."""
    if model is not None:
        spec = endpoints.get(model)
        return spec.estimate_usd(body, spec.price())
    return float(body.get("duration", 5)) * PRICE_PER_SECOND[bool(body.get("sound"))]


UNFINISHED = ("pending", "submitting", "running", "succeeded")  # states a further run would still move


class CrashHarness:
    def __init__(self, workdir: Path, *, jobs: int, faults: dict[str, float], seed: int = 0,
                 task_seconds: float = 0.3, concurrency: int = 8, read_timeout: float = 1.5,
                 budget: float | None = None, runners: int = 1, ledger_url: str | None = None,
                 lease_ttl: float | None = None, i2v: bool = False) -> None:
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
        self.last_stop_s: float | None = None  # ...and how long it took to end after the signal
        self.last_pause_landed = False  # ...and pause it?
        self.extra_args: list[str] = []  # appended to the runner's command line (bench knobs)
        self.global_args: list[str] = ["-q"]  # before the command (``-v`` for debug logs)
        self.budget = budget
        self.key = FAKE_KEY
        # The manifest's rows: (i, take). An edit changes some takes (a new prompt: a new job),
        # drops rows and adds rows; `next_i` numbers the added ones.
        self.rows: list[tuple[int, int]] = [(i, 1) for i in range(jobs)]
        self.next_i = jobs
        self.elsewhere = workdir / "elsewhere" / "deeper"  # another working directory
        # Several runners share one batch only on a shared (PostgreSQL) ledger; --state then holds the videos.
        if runners > 1 and ledger_url is None:
            raise ValueError("several runners need a shared ledger: pass ledger_url (a PostgreSQL URL)")
        self.runners = runners
        self.ledger_url = ledger_url
        self.lease_ttl = lease_ttl  # RUNNER_LEASE_TTL: how soon a dead runner's work is taken over
        # Image-to-video: the rows name input images (bench.crashimages), written beside the manifest.
        self.images = InputImages(workdir, jobs=jobs) if i2v else None
        self.last_during_landed = False  # did the last run_once's `during` action find the runner alive?
        # The state folder moved (state-2, state-3, …) and the manifest copied elsewhere (bench.crashmoves).
        self.moves = self.copies = 0
        self.places: list[Path] = [self.state]  # every state folder a run may have written: the key must be in none

    # ----------------------------------------------------------- processes
    def __enter__(self) -> CrashHarness:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.images is not None:
            self.images.write_all()
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
        images = self.images
        rows = "\n".join(
            f"      - {{i: {i}, take: {take}}}" if images is None else
            f"      - {{i: {i}, take: {take}, image: {json.dumps(images.value(i))}}}"
            for i, take in self.rows
        )
        budget = f"limits: {{budget_usd: {self.budget}}}\n" if self.budget is not None else ""
        self.manifest.write_text(
            "name: crash\n"
            + (f"model: {I2V_MODEL}\n" if images is not None else "")
            + "prompt: \"crash test clip number {i}, take {take}\"\n"
            "matrix:\n"
            "  rows:\n"
            f"{rows}\n"
            "output: \"{i}-{take}.mp4\"\n"
            f"max_jobs: {max(len(self.rows), 1000)}\n"
            f"{budget}",
            encoding="utf-8",
        )

    def edit_manifest(self, *, change: int, drop: int, add: int) -> dict[str, int]:
        """What an operator does between runs: new prompts for ``change`` jobs, ``drop`` jobs, ``add`` jobs."""
        rows = list(self.rows)
        changed = self.rng.sample(range(len(rows)), min(change, len(rows)))
        for index in changed:
            i, take = rows[index]
            rows[index] = (i, take + 1)
        dropped = set(self.rng.sample(range(len(rows)), min(drop, max(0, len(rows) - 1))))
        rows = [row for index, row in enumerate(rows) if index not in dropped]
        for _ in range(add):
            rows.append((self.next_i, 1))
            self.next_i += 1
        self.rows = rows
        self._write_manifest()
        return {"changed": len(changed), "dropped": len(dropped), "added": add}

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

    def runner_cmd(self, *, command: str = "run", state_flag: bool = True, state: Path | None = None,
                   manifest: Path | None = None) -> list[str]:
        given = ["--state", str(state or self.state)] if state_flag else []
        named = [str(manifest or self.manifest)] if command != "collect" else []
        ledger = ["--ledger", self.ledger_url] if self.ledger_url is not None else []
        return [
            sys.executable, "-m", "runner", *self.global_args, command, *named, *given, *ledger,
            "--base-url", self.base_url, "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.05",
            "--concurrency", str(self.concurrency), *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVITA_", "RUNNER_"))}
        ttl = {"RUNNER_LEASE_TTL": str(self.lease_ttl)} if self.lease_ttl is not None else {}
        # An in-doubt submit's task (if any) ends within task_seconds of its POST: it holds its slot that long
        # and more (the real default, 15 minutes, is a real task's life).
        hold = {"RUNNER_IN_DOUBT_HOLD": str(max(2.0, 4 * self.task_seconds))}
        # Its state is a throwaway folder (under /tmp, which a reboot may empty): no warning about it in every log.
        scratch = {"RUNNER_SCRATCH_STATE": "1"}
        # Its own book of ledgers (not ~/.local/state's): a torture's ledgers are not refused as another's.
        scratch["XDG_STATE_HOME"] = str(self.workdir / "xdg-state")
        return {**env, "NOVITA_API_KEY": self.key, "RUNNER_READ_TIMEOUT": str(self.read_timeout), **ttl, **hold,
                **scratch}

    def run_once(self, *, kill_after: float | None, sig: int = signal.SIGKILL, timeout: float = 120,
                 pause: tuple[float, float] | None = None, cwd: Path | None = None,
                 command: str = "run", refusal_ok: bool = False,
                 during: tuple[float, Callable[[], None]] | None = None, state: Path | None = None,
                 manifest: Path | None = None) -> int | None:
        """Start the runner; send ``sig`` after ``kill_after`` seconds. Returns its exit code.

        ``pause=(at, seconds)`` stops the process (SIGSTOP) ``at`` seconds after start for
        ``seconds``, then continues it (SIGCONT), as Ctrl-Z and ``fg`` or a frozen VM would.
        ``cwd`` runs it from another working directory (the manifest path is absolute).
        ``refusal_ok`` accepts exit 2 (the runner refused to start: a usage or state problem).
        ``during=(at, action)`` calls ``action`` ``at`` seconds after start (after a pause that began
        before it, counted without the pause) if the runner still runs (``last_during_landed``).
        ``state``: another ``--state``; ``manifest``: another manifest file, run without ``--state`` (the state
        folder found from it). From another ``cwd`` a state folder moved from the manifest's (no longer found from
        it) is given as ``--state``, as the operator gives it.
        """
        log_path = self.workdir / "runner.log"
        moved = self.state != self.workdir / "state"
        state_flag = manifest is None and (cwd is None or not DEFAULT_STATE_FOLLOWS_MANIFEST or moved
                                           or state is not None)
        with log_path.open("a") as log:  # a file, not a pipe: the runner must never block on its output
            log.write(f"--- {command} (kill after {kill_after}, signal {sig}, pause {pause}, cwd {cwd})\n")
            log.flush()
            proc = subprocess.Popen(self.runner_cmd(command=command, state_flag=state_flag, state=state,
                                                    manifest=manifest), env=self.env(),
                                    cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, text=True)
        self.last_kill_landed = self.last_pause_landed = self.last_during_landed = False
        self.last_stop_s = None
        signalled = 0.0
        started = time.monotonic()

        def alive_at(at: float) -> bool:
            """Wait until ``at`` seconds after the start; whether the runner still runs then."""
            try:
                proc.wait(max(0.0, at - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                return True
            return False

        # (when, order, what): the pause's SIGSTOP/SIGCONT, the action, the signal; in time order.
        steps: list[tuple[float, int, str]] = []
        if pause is not None:
            steps += [(pause[0], 0, "stop"), (pause[0] + pause[1], 1, "cont")]
        if during is not None:
            late = pause is not None and during[0] >= pause[0]
            steps.append((during[0] + (pause[1] if pause is not None and late else 0.0), 2, "during"))
        if kill_after is not None:  # never while paused: after the SIGCONT at the earliest
            steps.append((max(kill_after, sum(pause) if pause is not None else 0.0), 3, "kill"))
        try:
            for at, _, what in sorted(steps):
                if what == "cont":  # the pause itself is the experiment: wall time is the point
                    time.sleep(max(0.0, at - (time.monotonic() - started)))
                    proc.send_signal(signal.SIGCONT)
                elif not alive_at(at):
                    break
                elif what == "stop":
                    self.last_pause_landed = True
                    proc.send_signal(signal.SIGSTOP)
                elif what == "during" and during is not None:
                    self.last_during_landed = True
                    during[1]()
                elif what == "kill":
                    proc.send_signal(sig)
                    self.last_kill_landed = True
                    signalled = time.monotonic()
            proc.wait(timeout)
            if self.last_kill_landed:
                self.last_stop_s = time.monotonic() - signalled
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        # A negative code: the signal came before the runner installed its handlers (Python start-up).
        self._check_code(proc.returncode, log_path, refusal_ok=refusal_ok)
        return proc.returncode

    @staticmethod
    def _check_code(code: int | None, log_path: Path, *, refusal_ok: bool = False) -> None:
        # A negative code: the signal came before the runner installed its handlers (Python start-up).
        allowed = (0, 1, 3, 4, -signal.SIGKILL, -signal.SIGTERM, -signal.SIGHUP, -signal.SIGQUIT, *((2,) * refusal_ok))
        if code not in allowed:
            tail = log_path.read_text()[-4000:]
            raise AssertionError(f"runner exited {code}:\n{tail}")

    # ------------------------------------------------------------- verdict
    def sim_stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_sim/stats", timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def ledger_rows(self) -> list[dict[str, Any]]:
        if self.ledger_url is not None:
            return self._pg_rows(self.ledger_url)
        if not (self.state / "ledger.db").exists():
            return []
        db = sqlite3.connect(f"file:{self.state / 'ledger.db'}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in db.execute("SELECT * FROM jobs")]
        finally:
            db.close()

    @staticmethod
    def _pg_rows(url: str) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(url, row_factory=dict_row) as db:
            exists = db.execute("SELECT to_regclass('jobs') IS NOT NULL AS yes").fetchone()
            if not exists or not exists["yes"]:
                return []  # no runner has created the schema yet
            return list(db.execute("SELECT * FROM jobs"))

    def progress(self) -> float:
        """The share of the ledger's jobs that are finished (done, failed, lost or held in doubt)."""
        rows = self.ledger_rows()
        finished = sum(1 for row in rows if row["state"] in ("done", "failed", "lost", "in_doubt"))
        return finished / len(rows) if rows else 0.0

    def max_outstanding(self, *, answered: bool = False) -> int:
        """The most tasks the provider ever had outstanding at once for this harness's key (every runner's).

        ``answered``: counting only tasks whose id was answered at once — not those of a dropped, slow,
        malformed or gateway answer, which the runner holds in doubt, so cannot count (docs: in doubt).
        """
        by_account: dict[str, int] = self.sim_stats()["max_answered_by_account" if answered else "max_active_by_account"]
        return by_account.get(hashlib.sha256(self.key.encode()).hexdigest()[:12], 0)

    def inputs(self) -> ArchivedInputs:
        """How the judge rebuilds a row's wire body: the runner's input resolver at the manifest's folder,
        falling back to the archive of every input file the harness wrote (bench.crashbooks)."""
        return ArchivedInputs(self.manifest.parent, self.images.archive if self.images is not None else None)

    def verdict(self) -> Verdict:
        stats = self.sim_stats()
        rows = self.ledger_rows()
        books = judge_books(stats, rows, self.inputs())  # body by body, as the runner sends them
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
            jobs=len(rows), accepted_total=stats["accepted_total"], paid_duplicates=books.paid_duplicates,
            unrecorded_paid=books.unrecorded_paid, in_doubt=counts.get("in_doubt", 0), lost=counts.get("lost", 0),
            failed=counts.get("failed", 0), done=counts.get("done", 0), files_verified=verified, files_bad=bad,
            counts=counts, billed_unrecorded=books.billed_unrecorded, unjudged=books.unjudged,
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
            # Exit 4 also ends a run stopped by in-doubt submits in a row (the provider looked unsure): the
            # next run goes on with the jobs still pending, as an operator's next cron tick would.
            if code in (0, 1, 4) and not any(row["state"] in UNFINISHED for row in self.ledger_rows()):
                break
        return self.verdict(), codes

    def swarm_torture(self, *, kills: int, signals: tuple[int, ...] = SWARM_SIGNALS, min_after: float = 0.3,
                      max_after: float = 2.5, startup_share: float = 0.2, check_each: bool = True,
                      timeout: float = 600) -> SwarmResult:
        """``self.runners`` runner processes on the one batch; kill a random live one (a signal of
        ``signals``, chosen at random) at random instants and start it again, until ``kills`` signals
        have landed on a live runner; then let them all run to completion.

        Every runner's kill delay is drawn when it starts (``min_after``..``max_after`` seconds), so
        several may die close together, as hosts of one rack do. It counts from the process start for
        a share ``startup_share`` of the runners (kills during imports and planning), and otherwise from
        the moment its lease shows in the ledger (it is working: on a loaded machine start-up alone can
        outlast ``max_after``). With ``check_each`` the two books are compared after every kill
        (nothing paid twice, nothing billed unrecorded). A traceback in a runner's output fails it.
        """
        result = SwarmResult()
        deadline = time.monotonic() + timeout

        def start(index: int, kill: bool) -> RunnerProcess:
            result.starts += 1
            sig = self.rng.choice(signals)
            delay = self.rng.uniform(min_after, max_after)
            from_start = self.rng.random() < startup_share
            slot = self.start_runner(index, sig=sig, kill_after=delay if kill and from_start else None)
            slot.delay = delay if kill and not from_start else None
            return slot

        def arm(slots: list[RunnerProcess]) -> None:
            """Start the clock of each runner waiting for its lease, once the lease shows."""
            waiting = {slot.proc.pid: slot for slot in slots if slot.delay is not None}
            for pid in self._leased_pids() & set(waiting) if waiting else ():
                slot = waiting[pid]
                assert slot.delay is not None
                slot.kill_at, slot.delay = time.monotonic() + slot.delay, None

        def reap(slot: RunnerProcess) -> None:
            slot.reaped = True
            self._check_code(slot.proc.returncode, slot.log)
            output = slot.log.read_bytes()[slot.log_offset:]
            if b"Traceback" in output:
                raise AssertionError(f"runner {slot.proc.pid} printed a traceback:\n{output[-4000:].decode(errors='replace')}")
            result.codes.append(slot.proc.returncode)

        def overdue(slots: list[RunnerProcess]) -> None:
            if time.monotonic() > deadline:
                for slot in slots:
                    if slot.proc.poll() is None:
                        slot.proc.kill()
                raise AssertionError(f"the swarm did not finish in {timeout:.0f} s: {result}")

        began = time.monotonic()
        slots = [start(index, kill=True) for index in range(self.runners)]
        while sum(result.landed.values()) < kills:  # the kill phase
            overdue(slots)
            arm(slots)
            finished = self.progress() >= 1.0  # every job done, failed, lost or held in doubt: start no more
            for index, slot in enumerate(slots):
                if slot.proc.poll() is not None and not slot.reaped:  # it ended (or died): start it again
                    reap(slot)
                    if not finished:
                        slots[index] = start(index, kill=True)
                elif slot.kill_at is not None and time.monotonic() >= slot.kill_at \
                        and sum(result.landed.values()) < kills:  # two due in one pass: the 13th of 12 is not sent
                    slot.proc.send_signal(slot.sig)
                    slot.kill_at = None
                    result.landed[signal.Signals(slot.sig).name] += 1
                    result.kill_points.append(self.progress())
                    if check_each:
                        check = self.verdict()
                        result.worst_duplicates = max(result.worst_duplicates, check.paid_duplicates)
                        result.worst_unrecorded = max(result.worst_unrecorded, check.unrecorded_paid)
            if all(slot.proc.poll() is not None for slot in slots) and self.progress() >= 1.0:
                result.ran_out = True  # every job finished before enough kills landed
                break
            time.sleep(0.05)
        result.kill_phase_s = round(time.monotonic() - began, 1)
        for _ in range(20):  # then run to completion: no more signals
            while any(slot.proc.poll() is None for slot in slots):
                overdue(slots)
                time.sleep(0.02)
            for slot in slots:
                if not slot.reaped:
                    reap(slot)
            if self.progress() >= 1.0:
                break
            slots = [start(index, kill=False) for index in range(self.runners)]
        result.finish_s = round(time.monotonic() - began - result.kill_phase_s, 1)
        result.verdict = self.verdict()
        result.max_outstanding = self.max_outstanding()
        result.max_answered = self.max_outstanding(answered=True)
        return result

    def start_runner(self, index: int, *, sig: int = signal.SIGKILL, kill_after: float | None = None) -> RunnerProcess:
        """Start runner number ``index`` (its output in ``runner-<index>.log``); ``kill_after``: when
        (seconds from now) the caller means to send it ``sig`` — the caller sends it."""
        log_path = self.workdir / f"runner-{index}.log"
        with log_path.open("a") as log:  # a file, not a pipe: the runner must never block on its output
            log.write(f"--- run (kill after {kill_after}, signal {sig})\n")
            log.flush()
            offset = log.tell()
            proc = subprocess.Popen(self.runner_cmd(), env=self.env(), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, text=True)
        at = time.monotonic() + kill_after if kill_after is not None else None
        return RunnerProcess(proc=proc, kill_at=at, sig=sig, log=log_path, log_offset=offset)

    def _leased_pids(self) -> set[int]:
        """The pids of this host's runners whose lease shows in the (PostgreSQL) ledger."""
        if self.ledger_url is None:
            return set()
        import psycopg

        with psycopg.connect(self.ledger_url) as db:
            if db.execute("SELECT to_regclass('leases')").fetchone() in (None, (None,)):
                return set()
            return {int(pid) for (pid,) in db.execute("SELECT pid FROM leases WHERE host = %s", (socket.gethostname(),))}

    # ------------------------------------------------------- operator torture
    def remove_ledger(self) -> None:
        """What a careless `rm` (or a cleanup script) does between runs: the ledger files are gone."""
        for suffix in ("", "-wal", "-shm"):
            (self.state / f"ledger.db{suffix}").unlink(missing_ok=True)

    def key_leaks(self) -> list[str]:
        """Every file under a state dir (those a moved state left and a copied manifest's too), and every captured
        output, that holds the API key."""
        needle = self.key.encode()
        places = [p for folder in dict.fromkeys(self.places) for p in folder.rglob("*") if p.is_file()]
        places += [p for p in self.workdir.glob("*.log") if p.name != "simulator.log"]
        return [str(p) for p in places if needle in p.read_bytes()]

    def operator_verdict(self, rounds: dict[str, int], codes: list[int | None]) -> OperatorVerdict:
        verdict = self.verdict()
        stats = self.sim_stats()
        rows = self.ledger_rows()
        owners = judge_books(stats, rows, self.inputs()).by_body  # wire digest -> its rows
        current = set(self.rows)
        images = self.images

        def in_manifest(row: dict[str, Any]) -> bool:
            variables = json.loads(row["vars_json"])
            i = variables.get("i")
            if (i, variables.get("take")) not in current:
                return False
            # i2v: the row's image as the manifest names it now (an edited image makes its jobs new ones)
            return images is None or images.in_manifest(json.loads(row["request_json"]), i)

        by_task = {row["task_id"]: row for row in rows if row["task_id"]}
        without_file = orphaned = held = 0
        spent = 0.0
        for task_id, task in stats["tasks"].items():
            owner = next(iter(owners.get(task["body_sha256"], [])), None)
            spent += price_of(json.loads(owner["request_json"]), owner["model"]) if owner is not None else 0.0
            if task["status"] != "TASK_STATUS_SUCCEED":
                continue
            row = by_task.get(task_id)
            if row is None:
                candidates = owners.get(task["body_sha256"], [])
                if any(r["state"] == "in_doubt" for r in candidates):
                    held += 1
                elif candidates and not any(in_manifest(r) for r in candidates):
                    orphaned += 1
                else:
                    without_file += 1
                continue
            path = self.state / row["path"] if row["path"] else None
            stored = path is not None and path.is_file() and row["state"] == "done"
            if stored and path is not None and hashlib.sha256(path.read_bytes()).hexdigest() == task["video_sha256"]:
                continue
            if in_manifest(row):
                without_file += 1
            else:
                orphaned += 1
        outstanding = sum(1 for row in rows if in_manifest(row)
                          and row["state"] in ("pending", "submitting", "running", "succeeded"))
        return OperatorVerdict(verdict=verdict, paid_without_file=without_file, orphaned_without_file=orphaned,
                               held_in_doubt=held, outstanding=outstanding,
                               spent_usd=round(spent, 4), key_leaks=self.key_leaks(), rounds=rounds, codes=codes)

    def operator_round(self, *, sig: int, pause: bool = False, edit: bool = False, elsewhere: bool = False,
                       min_after: float = 0.3, max_after: float = 2.5, pause_seconds: float | None = None,
                       image: str | None = None, move: bool = False, copy: bool = False,
                       kill_refused: bool = False) -> tuple[int | None, list[str]]:
        """One run with operator actions: edit the manifest first, run (maybe from elsewhere), pause, signal.

        ``move``: the state folder moved first, ``copy``: the manifest copied and run elsewhere first — each a run of a
        new ledger the book must refuse, paying nothing (``kill_refused``: signalled at a random instant), done only
        once the batch's ledger has sent a job (:mod:`bench.crashmoves`).

        ``image`` (an i2v harness): one of ``bench.crashimages.IMAGE_ACTIONS``, done to an input image
        before the run or, for the mid-run ones, at a random instant before the signal.
        Returns the exit code and what was done (for the figures).
        """
        did: list[str] = []
        if edit:
            grown = max(1, len(self.rows) // 10)
            self.edit_manifest(change=grown, drop=grown, add=grown)
            did.append("manifest edits")
        if (move or copy) and crashmoves.has_sent(self):
            if copy:
                did += crashmoves.run_copy(self, kill=kill_refused, max_after=max_after)
            if move:
                did += crashmoves.move_state(self, kill=kill_refused, max_after=max_after)
        images = self.images
        mid_run: Callable[[random.Random], None] | None = None
        if image is not None and images is not None:
            if image == "image edits":
                images.edit(self.rng)
                did.append(image)
            elif image == "image renames":
                images.rename(self.rng)
                self._write_manifest()  # the operator's manifest follows the new name
                did.append(image)
            else:
                mid_run = images.edit if image == "image swaps mid-run" else images.take_away
        cwd = None
        if elsewhere:
            self.elsewhere.mkdir(parents=True, exist_ok=True)
            cwd = self.elsewhere
            did.append("runs from another cwd")
        kill_after = self.rng.uniform(min_after, max_after)
        during: tuple[float, Callable[[], None]] | None = None
        if mid_run is not None:  # before the signal, or the action would never land on a live runner
            act = mid_run
            during = (self.rng.uniform(min(min_after, kill_after), kill_after), lambda: act(self.rng))
        paused = None
        if pause:
            # Longer than the read timeout: a POST answered during the pause is what item 10 is about.
            seconds = pause_seconds if pause_seconds is not None else self.read_timeout + 0.5
            paused = (self.rng.uniform(min_after, kill_after), seconds)
            kill_after += seconds
        try:
            # An image taken away while the runner plans makes it refuse the manifest (exit 2), as it should.
            code = self.run_once(kill_after=kill_after, sig=sig, pause=paused, cwd=cwd, during=during,
                                 refusal_ok=image == "image away mid-run")
        finally:
            if images is not None:
                images.put_back()  # an image taken away mid-run is back before the next run
        if self.last_during_landed:
            did.append(str(image))
        if self.last_pause_landed:
            did.append("SIGSTOP pauses")
        if self.last_kill_landed:
            did.append(signal.Signals(sig).name)
        return code, did

    def operator_torture(self, *, rounds: int | None = None, script: list[dict[str, Any]] | None = None,
                         min_after: float = 0.3, max_after: float = 2.5, p_pause: float = 0.3, p_edit: float = 0.3,
                         p_elsewhere: float = 0.3, p_move: float = 0.1, p_copy: float = 0.1,
                         p_kill_refused: float = 0.3, check_each: bool = True) -> OperatorVerdict:
        """Rounds of :meth:`operator_round` — ``script`` (a list of its keyword arguments) or ``rounds``
        random ones — then runs to completion and a final clean ``collect``.

        After every round the two books are compared (nothing paid twice, nothing billed unrecorded);
        an AssertionError names the round where that broke.
        """
        if script is None:
            script = [
                {"sig": self.rng.choice(OPERATOR_SIGNALS), "pause": self.rng.random() < p_pause,
                 "edit": number > 0 and self.rng.random() < p_edit, "elsewhere": self.rng.random() < p_elsewhere,
                 "move": number > 0 and self.rng.random() < p_move, "copy": number > 0 and self.rng.random() < p_copy,
                 "kill_refused": self.rng.random() < p_kill_refused}
                for number in range(rounds or 0)
            ]
        done: Counter[str] = Counter()
        codes: list[int | None] = []
        for number, step in enumerate(script):
            code, did = self.operator_round(min_after=min_after, max_after=max_after, **step)
            codes.append(code)
            done.update(did)
            if check_each:
                check = self.verdict()
                if check.paid_duplicates or check.unrecorded_paid:
                    raise AssertionError(f"round {number} ({step}): {check}")
        for _ in range(20):  # then run to completion
            code = self.run_once(kill_after=None, timeout=300)
            codes.append(code)
            if code in (0, 1, 4):
                break
        # A final clean collect: every paid task of every job the ledger knows, in any manifest or none.
        codes.append(self.run_once(kill_after=None, timeout=300, command="collect"))
        return self.operator_verdict(dict(done), codes)
