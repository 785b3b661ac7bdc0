"""What the simulator remembers, and the small operations every route shares.

:class:`SimState` holds the knobs, the clock, the one seeded random source, the paid tasks and
the accounting, behind one lock (a test thread may read while a server thread serves). The routes
(:mod:`~runner.simulator.submit`, :mod:`~runner.simulator.results`) take it as their first
argument; :class:`runner.simulator.Simulator` owns it.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import random
import threading
import time
import uuid
from typing import Any

from runner.jobs import canonical_json
from runner.simulator.config import Clock, SimConfig
from runner.simulator.outputs import output_shape
from runner.simulator.tasks import FAILURE_REASONS, SimTask
from runner.simulator.urls import UrlSigner

__all__ = ["RPM_WINDOW_SECONDS", "SimState", "account_of"]

RPM_WINDOW_SECONDS = 60.0


def account_of(key: str) -> str:
    """The name of the account a key belongs to in the accounting: a short hash, never the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def _push(heaps: dict[str, list[float]], peaks: dict[str, int], account: str, now: float, ends: float) -> None:
    """One more task of ``account`` outstanding until ``ends``: drop the finished ones, note the peak."""
    heap = heaps.setdefault(account, [])
    while heap and heap[0] <= now:
        heapq.heappop(heap)
    heapq.heappush(heap, ends)
    peaks[account] = max(peaks.get(account, 0), len(heap))


class SimState:
    """The simulator's state; hold ``lock`` while reading or changing it."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.lock = threading.RLock()
        self.signer = UrlSigner()
        self.tasks: dict[str, SimTask] = {}
        self.accepted_by_body: collections.Counter[str] = collections.Counter()
        self.responses: collections.Counter[str] = collections.Counter()
        self.submit_times: collections.deque[float] = collections.deque()
        self.poll_times: collections.deque[float] = collections.deque()  # task-result GETs admitted (poll_rpm)
        self.polls = 0
        self.downloads = 0
        self._finishing: list[float] = []  # heap: when each unfinished task finishes
        self.max_active = 0  # the most tasks ever created and not yet finished at once (a concurrency limit's proof)
        # The same per account (the caller's key, named by a hash of it, never the key): what one account's
        # concurrency limit sees when several runners share it.
        self._finishing_by_account: dict[str, list[float]] = {}
        self.max_active_by_account: dict[str, int] = {}
        # ...counting only tasks whose id was answered at once (no dropped, slow, malformed or gateway answer):
        # the tasks a client can know it holds, so the peak its own concurrency limit is answerable for.
        self._answered_by_account: dict[str, list[float]] = {}
        self.max_answered_by_account: dict[str, int] = {}
        self.spent_usd = 0.0  # what the tasks created drew from the balance (SimConfig.task_usd)
        self.last_answered: str | None = None  # the id of the task last answered at once (p_duplicate_task_id repeats it)
        self.wall_origin = time.time()
        self.clock_origin = clock()
        self._held: set[threading.Event] = set()  # the slow answers held now (release_slow sends them)

    def hold(self, answer: threading.Event) -> None:
        """A slow answer is held until ``answer`` is set by :meth:`release_slow` (or its time is up)."""
        with self.lock:
            self._held.add(answer)

    def unhold(self, answer: threading.Event) -> None:
        with self.lock:
            self._held.discard(answer)

    def release_slow(self) -> None:
        """Let every slow answer held now go out at once, so a test waits for its own event rather than wall time;
        later slow answers are held again."""
        with self.lock:
            held, self._held = self._held, set()
        for answer in held:
            answer.set()

    def count(self, route: str, kind: str) -> None:
        """Count one answer under ``"<route>:<kind>"``."""
        with self.lock:
            self.responses[f"{route}:{kind}"] += 1

    def roll(self, probability: float) -> bool:
        """One seeded draw; probabilities 0 and 1 draw nothing, so they do not shift the sequence."""
        if probability <= 0.0:
            return False
        if probability >= 1.0:
            return True
        return self.rng.random() < probability

    def wall_ms(self, at: float) -> str:
        """Epoch milliseconds (as the provider's string) of an instant on the simulator's clock."""
        return str(int((self.wall_origin + at - self.clock_origin) * 1000))

    def admit(self, now: float, rpm: int, window: collections.deque[float] | None = None) -> bool:
        """The sliding-window rpm limiter: True when this submit (or, with ``window``, this poll) fits in the last 60 s."""
        window = self.submit_times if window is None else window
        while window and window[0] <= now - RPM_WINDOW_SECONDS:
            window.popleft()
        if len(window) >= rpm:
            return False
        window.append(now)
        return True

    def create(self, slug: str, body: dict[str, Any], cfg: SimConfig, now: float, account: str = "") -> SimTask:
        """Create (and so charge for) a task. Ids are random, not seeded: a restarted
        simulator must never hand out an id an earlier one gave to another job."""
        fail_reason = self.rng.choice(FAILURE_REASONS) if self.roll(cfg.p_task_failed) else None
        body_sha256 = hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()
        task = SimTask(
            task_id=str(uuid.uuid4()),
            slug=slug,
            body=body,
            body_sha256=body_sha256,
            submitted_at=now,
            task_seconds=cfg.task_seconds,
            queue_fraction=cfg.queue_fraction,
            fail_reason=fail_reason,
            video_min_bytes=cfg.video_bytes,
            shape=output_shape(slug, body, cfg),
            account=account,
        )
        self.tasks[task.task_id] = task
        self.accepted_by_body[body_sha256] += 1
        self.spent_usd += cfg.task_usd or 0.0
        while self._finishing and self._finishing[0] <= now:
            heapq.heappop(self._finishing)
        heapq.heappush(self._finishing, now + task.task_seconds)
        self.max_active = max(self.max_active, len(self._finishing))
        _push(self._finishing_by_account, self.max_active_by_account, account, now, now + task.task_seconds)
        return task

    def restore(self, task_id: str, slug: str, body: dict[str, Any], sent_at: float | None) -> None:
        """Know a task an earlier simulator created (sent at the wall time ``sent_at``; None: now): it takes this
        simulator's task time from then and succeeds. Not counted as paid here (the earlier one's books had it)."""
        cfg = self.config
        now = self.clock()
        submitted = now if sent_at is None else min(now, self.clock_origin + sent_at - self.wall_origin)
        self.tasks[task_id] = SimTask(
            task_id=task_id, slug=slug, body=body,
            body_sha256=hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest(), submitted_at=submitted,
            task_seconds=cfg.task_seconds, queue_fraction=cfg.queue_fraction, fail_reason=None,
            video_min_bytes=cfg.video_bytes, shape=output_shape(slug, body, cfg), account="",
        )

    def answered(self, task: SimTask, account: str, now: float) -> None:
        """``task``'s id goes back to its caller in a clean answer, at once (see ``max_answered_by_account``)."""
        _push(self._answered_by_account, self.max_answered_by_account, account, now, task.finishes_at)
        self.last_answered = task.task_id

    def balance_left(self) -> float | None:
        """USD left on the account: ``balance_usd`` less what the tasks drew (None: no balance endpoint)."""
        usd = self.config.balance_usd
        return None if usd is None else max(0.0, usd - self.spent_usd)

    def outstanding(self, account: str, now: float) -> int:
        """How many tasks ``account`` has created that are unfinished at ``now`` (what ``max_concurrent`` caps)."""
        heap = self._finishing_by_account.get(account, [])
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        return len(heap)
