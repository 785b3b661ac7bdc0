"""Knobs of the simulated provider, and the clock it runs on.

:class:`SimConfig` holds every knob; its defaults are a well-behaved provider
(no faults, no rate limit, 3 s tasks, one-hour URLs). Fault probabilities are
drawn from one seeded :class:`random.Random`, so a run with the same seed and
the same requests in the same order misbehaves the same way.

:class:`ManualClock` is the clock tests inject: task progress, URL expiry, the
rpm window and task retention all read the simulator's clock, so a test
advances time instead of sleeping. Only ``slow_seconds`` (a response held past
a client's timeout) is wall time, because the client's timeout is; a test that
holds an answer until something happens releases it (``Simulator.release_slow``,
``POST /_sim/release-slow``) rather than guessing a time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.errors import UsageError

__all__ = ["Clock", "ManualClock", "SimConfig", "parse_changes", "parse_config"]

Clock = Callable[[], float]
"""Seconds on a monotonic scale; ``time.monotonic`` unless a test injects one."""


def _fraction(default: float, description: str) -> Any:
    """A pydantic Field for a probability or fraction in [0, 1]."""
    return Field(default=default, ge=0.0, le=1.0, description=description)


class SimConfig(BaseModel):
    """Every knob of the simulator. Defaults: a well-behaved provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: str | None = Field(
        default=None,
        repr=False,
        description="The only key accepted (403 INVALID_API_KEY otherwise); None accepts any non-empty key.",
    )
    task_seconds: float = Field(default=3.0, ge=0, description="Time from submit to a finished task.")
    queue_fraction: float = _fraction(0.2, "Leading fraction of task_seconds spent TASK_STATUS_QUEUED.")
    video_url_ttl: int = Field(default=3600, ge=0, description="Seconds a signed video URL stays valid.")
    seed: int = Field(default=0, description="Seed of the one random.Random behind faults and task ids.")
    rpm: int | None = Field(
        default=None,
        ge=1,
        description="Submit POSTs admitted per sliding 60 s window; beyond it 429 RATE_LIMIT_EXCEEDED. "
        "None: no limit.",
    )
    poll_rpm: int | None = Field(
        default=None,
        ge=1,
        description="task-result GETs admitted per sliding 60 s window; beyond it 429 RATE_LIMIT_EXCEEDED "
        "(Retry-After as for rpm). None: no limit.",
    )
    shared_rpm: bool = Field(
        default=False,
        description="task-result GETs count against the submit window of rpm too, and are answered 429 beyond it "
        "[?: whether polls count against the RPM is not documented]. Off: only poll_rpm limits them.",
    )
    retry_after: float | None = Field(
        default=1.0,
        ge=0,
        description="Retry-After seconds sent with 429s when retry_after_header is on; None omits the header "
        "on rpm 429s.",
    )
    retry_after_header: bool = Field(
        default=False,
        description="Send Retry-After with 429s. Off by default: Novita does not document it and none of its "
        "clients reads it.",
    )
    auth_401: bool = Field(
        default=False,
        description="Answer key problems 401 (Novita's general guide) instead of its error table's 400 "
        "MISSING_API_KEY / 403 INVALID_API_KEY.",
    )
    bare_key: bool = Field(
        default=False,
        description="Take 'Authorization: <key>' without the Bearer scheme, as Novita's JS SDK sends it [?: whether "
        "the real API does is unknown]. Off: 400 MISSING_API_KEY.",
    )
    extra_in_results: bool = Field(
        default=True,
        description="task-result bodies carry extra.debug_info; off: no extra object at all, as in some of "
        "Novita's own video examples.",
    )
    reference_seconds: float = Field(
        default=10.0,
        gt=0,
        le=30,
        description="Length of a motion-control reference video given by URL (never fetched), which a "
        "character_orientation: video task's output follows.",
    )
    data_uri_images: bool = Field(
        default=True,
        description="An image-to-video `image` or `end_image` may be a base64 data: URI [?: not stated for Kling v3 "
        "I2V]. Off: such a body answers 400 INVALID_REQUEST_BODY (only a URL is taken) and nothing is created.",
    )
    balance_usd: float | None = Field(
        default=10000.0,
        ge=0,
        description="The account balance GET /openapi/v1/billing/balance/detail (and the older /v3/user/balance) "
        "answers, in USD (sent as availableBalance in 1/10000 USD); None: 404 API_NOT_FOUND, no balance "
        "endpoint.",
    )
    task_usd: float | None = Field(
        default=None,
        ge=0,
        description="USD each task created draws from balance_usd, billed as it is created [?: at submit or at its "
        "end is not documented]; a submit when less is left answers 400 BILLING_BALANCE_NOT_ENOUGH and creates "
        "nothing. None: the balance is never drawn down.",
    )
    video_bytes: int = Field(
        default=0, ge=0, description="Pad each MP4 to at least this many bytes (download benchmarks)."
    )
    task_retention_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Seconds a finished task stays queryable, then TASK_NOT_FOUND "
        "(unknown for the real API). None: forever.",
    )
    tasks_per_key: bool = Field(
        default=False,
        description="task-result answers 404 TASK_NOT_FOUND for a task another key created, as an account would "
        "for another account's task [?]. Off: any accepted key sees every task.",
    )
    p_rate_limit: float = _fraction(
        0.0, "Submit answers 429 RATE_LIMIT_EXCEEDED with Retry-After; nothing is created."
    )
    p_rate_limit_no_retry_after: float = _fraction(
        0.0, "Submit answers 429 RATE_LIMIT_EXCEEDED without Retry-After; nothing is created."
    )
    p_create_failed: float = _fraction(
        0.0, "Submit answers 500 with envelope reason CREATE_TASK_FAILED; nothing is created (but see "
        "create_failed_created_fraction)."
    )
    create_failed_created_fraction: float = _fraction(
        0.0,
        "Share of CREATE_TASK_FAILED answers that created the paid task first [guess: the docs do not say a 500 "
        "created nothing]. runner reads the reason as nothing created and sends the body again, so each is a task "
        "paid twice.",
    )
    p_refused: float = _fraction(
        0.0, "Submit answers the documented error `refusal` (its status and reason, in the envelope); nothing is created."
    )
    refusal: str = Field(
        default="400 ILLEGAL_PROMPT",
        pattern=r"^[45][0-9][0-9] [A-Z][A-Z_]{0,63}$",
        description="'<status> <REASON>' of a p_refused answer: 400 ILLEGAL_PROMPT, 400 BILLING_BALANCE_NOT_ENOUGH, "
        "403 API_NOT_ALLOWED, 403 FEATURE_NOT_ALLOWED, 500 BILLING_FAILED, 500 TASK_FAILED, 402 with any reason…",
    )
    p_duplicate_task_id: float = _fraction(
        0.0,
        "Submit creates its task, then answers 200 with the id of the task answered before it (a replayed answer, "
        "or the provider's mistake); its own task's id is never sent. The first answer has none to repeat.",
    )
    max_concurrent: int | None = Field(
        default=None,
        ge=1,
        description="Tasks one account (one key) may have unfinished at once [?: undocumented; Kling plans allow "
        "5-20]; a submit beyond it answers 429 RATE_LIMIT_EXCEEDED (Retry-After as for rpm) and creates nothing. "
        "None: no cap.",
    )
    p_gateway: float = _fraction(
        0.0,
        "Submit answers a 502 or 504 HTML gateway page without envelope; gateway_created_fraction "
        "of these created a paid task first, which is why a client must treat them as ambiguous.",
    )
    gateway_created_fraction: float = _fraction(
        0.5, "Share of gateway faults that created the paid task before failing."
    )
    p_drop: float = _fraction(
        0.0, "Submit creates the task, then closes the connection with no response bytes at all."
    )
    p_slow: float = _fraction(
        0.0, "Submit creates the task, then holds the response for slow_seconds (past a client timeout)."
    )
    slow_seconds: float = Field(default=120.0, ge=0, description="Wall-clock delay of a p_slow response (at most: POST /_sim/release-slow sends those held now).")
    p_malformed: float = _fraction(
        0.0, "Submit creates the task, then answers 200 with a body that is not the documented JSON."
    )
    p_task_failed: float = _fraction(
        0.0, "A created task ends TASK_STATUS_FAILED with a non-empty reason."
    )
    p_status_unknown: float = _fraction(
        0.0, "task-result reports TASK_STATUS_UNKNOWN (and no video) for this poll; transient."
    )
    p_poll_error: float = _fraction(
        0.0, "task-result answers 500 GET_RESULT_FAILED (envelope) or a 503 page; transient."
    )
    p_truncated: float = _fraction(
        0.0, "A download sends the full Content-Length header, then closes the connection mid-body."
    )
    fresh_urls: bool = Field(
        default=True,
        description="Each task-result call signs a new video URL [guess: yes]. Off: a task's URL is signed once, at "
        "its first SUCCEED answer, and handed out again unchanged (expiring video_url_ttl after that first answer) "
        "while video_url_ttl still says the whole TTL.",
    )
    p_expired_url: float = _fraction(
        0.0, "task-result hands out a video URL that has already expired."
    )
    p_long_task_id: float = _fraction(
        0.0, "Submit creates the task, then answers 200 with its id padded to 64 KB (an implausible id)."
    )
    huge_numbers: bool = Field(
        default=False,
        description="A hostile provider: task-result sends eta, progress_percent, video_url_ttl and the "
        "debug_info times as absurd numbers (1e400, 400-digit integers).",
    )
    echo_key: bool = Field(
        default=False,
        description="A hostile provider: task-result quotes the caller's API key in a failed task's reason "
        "and in debug_info.request_info.",
    )

    def public_dict(self) -> dict[str, Any]:
        """The knobs as JSON-ready data, with the API key masked."""
        data = self.model_dump(mode="json")
        if data.get("api_key") is not None:
            data["api_key"] = "***"
        return data


def parse_config(base: SimConfig | None = None, **changes: Any) -> SimConfig:
    """``base`` with ``changes`` applied and validated; :class:`UsageError` names the bad knob."""
    data = (base or SimConfig()).model_dump()
    data.update(changes)
    try:
        return SimConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise UsageError(f"invalid simulator config: {problems}") from exc


def parse_changes(text: str | bytes) -> dict[str, Any]:
    """Parse a JSON object of SimConfig changes (``--config``, ``POST /_sim/config``)."""
    try:
        changes = json.loads(text or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"simulator config must be a JSON object: {exc}") from exc
    if not isinstance(changes, dict):
        raise UsageError(f"simulator config must be a JSON object, got {type(changes).__name__}")
    return changes


class ManualClock:
    """A clock that moves only when told: ``clock()`` reads it, ``clock.advance(s)`` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance({seconds!r}))")
        with self._lock:
            self._now += seconds

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"
