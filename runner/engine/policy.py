"""Every delay and threshold of the engine, in one place: :class:`Policy`, and the run's :class:`EngineConfig`.

:class:`EngineConfig` holds what a user sets (the run settings of :mod:`runner.config`, whose
defaults live there once, plus the manifest's ``retries:`` and the mode); :class:`Policy` holds the
engine's tuning — every delay, bound and threshold the lanes use, with its default documented here.
No lane has a magic number of its own. Tests pass a fast policy (small delays) instead of sleeping.
The adaptive rate limiter's own constants are its algorithm (``runner/engine/ratelimit.py``).
"""

from __future__ import annotations

import dataclasses

from runner.config import DEFAULTS, RunSettings, download_workers
from runner.ledger.api import IN_DOUBT_HOLD_S, LEASE_TTL_S

__all__ = ["EngineConfig", "Policy"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The engine's tuning. Defaults are the production values; every field is a delay, bound or threshold."""

    # --- polling (the poller source)
    poll_max_interval: float = 60.0  # seconds: the longest wait between two polls of one task
    polls_in_flight: int = 0  # polls on the wire at once; 0: max(16, concurrency) (never a cap of its own)
    eta_margin: float = 0.05  # a poll goes up to this fraction after the provider's eta (never before it)
    duration_samples: int = 50  # recent task durations that place the first poll of a new task
    scouts: int = 3  # while no task time is known, the first tasks submitted are polled at once, for their eta
    scout_delay: float = 0.1  # seconds after submit a scout is polled (its eta then places the other first polls)
    probe_step: float = 0.03  # the scout whose eta placed them is asked this often once < 1 s is left, until done
    probes: int = 40  # ... at most this many times (one run; an eta that is never right costs no more)
    max_poll_errors: int = 30  # consecutive failed polls of one task before giving it up this run
    poll_backoff_steps: int = 5  # a failing poll's delay doubles at most this many times (capped by poll_max_interval)
    # --- TASK_NOT_FOUND (F3): `lost` only when it persists
    gone_after_s: float = 6 * 3600.0  # not-found answers must span this long (monotonic in a run, recorded across runs)
    gone_answers: int = 3  # ... with at least this many answers within one run
    gone_runs: int = 3  # ... or in at least this many distinct runs (one run's wall clock jump never suffices)
    # --- submitting
    pending_batch: int = 64  # pending rows read from the ledger at a time
    unreachable_after: int = 4  # consecutive connect failures (nothing sent) before the run stops
    uncertain_after: int = 3  # consecutive in-doubt submits before the run stops (F5)
    connect_backoff: float = 0.5  # seconds, doubled per consecutive connect failure, jittered ×(0.5..1.5)
    connect_backoff_max: float = 60.0
    in_doubt_hold_s: float = IN_DOUBT_HOLD_S  # an in-doubt submit may have created a task: it keeps its slot this long
    refused_delay: float = 1.0  # seconds before resubmitting a CREATE_TASK_FAILED, doubled per one in a row (jittered
    # ×(0.5..1.5), capped by connect_backoff_max)
    create_failed_for_s: float = 600.0  # CREATE_TASK_FAILED answers in a row, none accepted, this long: no more submits
    record_retry_delays: tuple[float, ...] = (0.05, 0.25, 1.0)  # retries of a failed write of an accepted task id
    edit_check_interval: float = 1.0  # seconds between two looks at whether the manifest's files changed (a stat each)
    # --- downloading (the fetch lane)
    url_margin_s: float = 60.0  # refresh a result URL that expires sooner than this
    max_fetch_tries: int = 8  # downloads (and, apart, fresh URLs) of one result per run before leaving it
    download_backoff: float = 0.25  # seconds, doubled per failed download, jittered ×(0..1)
    download_backoff_max: float = 30.0
    # --- several runners on one shared ledger (PostgreSQL; EngineConfig.shared)
    shared_slot_wait_s: float = 0.5  # every runner's tasks fill the concurrency: look for a free slot again after this,
    shared_idle_max_s: float = 4.0  # ... doubled per look up to this (an idle runner's cost: one count a look)
    lease_ttl_s: float = LEASE_TTL_S  # an owner's lease lasts this long after a renewal; renewed every ttl/4,
    # and expired owners' work is taken over every ttl/2: a dead runner's tasks are followed again within ~1.5 ttl
    # --- buffers between the lanes (their bounds are the back-pressure)
    update_buffer: int = 64  # task updates produced and not yet applied
    fetch_buffer: int = 0  # results waiting for a download worker; 0: max(4 × download workers, concurrency)


@dataclasses.dataclass(frozen=True, slots=True)
class EngineConfig:
    """What one run asks of the engine: the run settings, the manifest, the mode, and the tuning.

    The run settings' defaults are :data:`runner.config.DEFAULTS` (never typed here);
    :meth:`from_settings` builds one from resolved :class:`RunSettings`.
    """

    manifest: str | None  # the manifest whose pending jobs may be submitted; None: submit nothing new
    concurrency: int = DEFAULTS.concurrency
    rpm: float | None = DEFAULTS.rpm
    poll_rpm: float | None = DEFAULTS.poll_rpm
    poll_interval: float = DEFAULTS.poll_interval  # the shortest wait between two polls of one task
    downloads: int | None = DEFAULTS.downloads  # None: see runner.config.download_workers
    budget_usd: float | None = DEFAULTS.budget_usd
    retries: int = 0  # the manifest's `retries:` (not a run setting)
    submit: bool = True
    collect: bool = True
    max_runtime: float | None = DEFAULTS.max_runtime
    inline_memory: int = DEFAULTS.inline_memory  # bytes of inline request bodies held at once (runner.engine.room)
    shared: bool = False  # the ledger is shared by several runners: claim, renew the lease, take over expired work
    # How a command the run tells the operator to paste names the manifest (its path as typed; None: MANIFEST) and
    # the ledger (the --state given: without it, a command pasted opens the state/ beside the manifest)
    manifest_file: str | None = None
    ledger_words: tuple[str, ...] = ()  # quoted for a shell (runner.service.hints.ledger_words)
    ledger_note: str = ""  # what must be known to paste them (a password left out)
    policy: Policy = dataclasses.field(default_factory=Policy)

    @classmethod
    def from_settings(
        cls, settings: RunSettings, *, manifest: str | None, retries: int = 0, submit: bool = True, collect: bool = True,
        policy: Policy | None = None, shared_ledger: bool = False, manifest_file: str | None = None,
        ledger_words: tuple[str, ...] = (), ledger_note: str = "",
    ) -> EngineConfig:
        """The engine's view of resolved run settings: every setting the engine reads, copied by name."""
        shared = {field.name for field in dataclasses.fields(cls)} & {field.name for field in dataclasses.fields(settings)}
        return cls(manifest=manifest, retries=retries, submit=submit, collect=collect, policy=policy or Policy(),
                   shared=shared_ledger, manifest_file=manifest_file, ledger_words=ledger_words,
                   ledger_note=ledger_note, **{name: getattr(settings, name) for name in shared})

    @property
    def polls_in_flight(self) -> int:
        """Polls on the wire at once: as many as tasks may be outstanding (16 at least), unless the policy says."""
        return self.policy.polls_in_flight or max(16, self.concurrency)

    @property
    def download_workers(self) -> int:
        """Downloads at once: the setting, or one per 8 tasks outstanding (at least 4, at most 1024)."""
        return download_workers(self.downloads, self.concurrency)

    @property
    def fetch_buffer(self) -> int:
        """Results that may wait for a download before the updates lane waits (then polls, then submits)."""
        return self.policy.fetch_buffer or max(4 * self.download_workers, self.concurrency, 1)
