"""The simulated Novita async API, as an ASGI 3 app.

Routes (see ``docs/provider.md`` for the real API):

- ``POST /v3/async/<slug>`` — submit; Bearer auth, body validated by the
  endpoint's spec (``runner.endpoints``: the same rules the runner plans
  with), then the rpm limit and the seeded faults, then ``200 {"task_id": …}``.
- ``GET /v3/async/task-result?task_id=`` — the task as it stands on the
  simulator's clock, with a freshly signed video URL once it succeeded.
- ``GET /_sim/videos/<task_id>.mp4?expires=&n=&sig=`` — the presigned video
  URL (no Bearer key); 403 with an S3-style XML body once expired or forged.
- ``GET /_sim/stats`` — accounting, so tests can prove nothing was paid twice.
- ``GET|POST /_sim/config`` — read or change the knobs at run time.

Every answer is counted in ``stats()["responses"]`` under ``"<route>:<kind>"``;
routes are ``submit``, ``task_result``, ``download``, ``sim`` (control) and
``other`` (unknown paths); kinds say what happened (``ok``, ``missing_key``, ``invalid_key``, ``invalid_body``,
``api_not_found``, ``rpm_limited``, ``rate_limit``, ``rate_limit_no_retry_after``,
``create_failed``, ``gateway_502``/``gateway_504`` with ``_created`` when a
task was made first, ``drop``, ``slow``, ``long_task_id``, ``malformed``, ``not_found``,
``poll_error_500``, ``poll_error_503``, ``expired_url``, ``bad_request``,
``expired``, ``bad_signature``, ``truncated``, ``method_not_allowed``).
"""

from __future__ import annotations

import collections
import enum
import hashlib
import hmac
import json
import logging
import random
import threading
import time
import uuid
from typing import Any

import anyio

from runner import endpoints
from runner.errors import UsageError
from runner.jobs import canonical_json
from runner.models import TASK_RESULT_PATH, TaskStatus
from runner.simulator.asgi import (
    BodyTooLarge,
    DropConnection,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    envelope,
    html_page,
    json_response,
    raw_response,
    xml_error,
)
from runner.simulator.config import Clock, SimConfig, parse_changes, parse_config
from runner.simulator.tasks import FAILURE_REASONS, TASK_TYPE, SimTask, TaskSnapshot
from runner.simulator.urls import UrlSigner, video_task_id
from runner.simulator.validation import check_body

__all__ = ["Simulator"]

log = logging.getLogger(__name__)

RPM_WINDOW_SECONDS = 60.0
LONG_TASK_ID = 64 * 1024
HUGE_NUMBER = "9" * 400
_SUBMIT_PREFIX = "/v3/async/"
_MALFORMED_BODIES: tuple[tuple[str, bytes], ...] = (
    ("application/json", b'{"task_id": "'),
    ("application/json", b""),
    ("application/json", b'{"task_id": null}'),
    ("application/json", b'{"code": 0, "data": {}}'),
    ("text/html", b"<html><body>OK</body></html>"),
)


def _with_huge_numbers(body: dict[str, Any]) -> bytes:
    """``body`` as JSON with its numbers replaced by absurd ones (the ``huge_numbers`` fault)."""
    body["task"]["eta"] = float("inf")  # written as 1e400 below
    body["task"]["progress_percent"] = int(HUGE_NUMBER)
    for video in body["videos"]:
        video["video_url_ttl"] = HUGE_NUMBER
    debug = body["extra"]["debug_info"]
    debug["submit_time_ms"], debug["complete_time_ms"] = float("inf"), int(HUGE_NUMBER)
    return json.dumps(body).replace("Infinity", "1e400").encode()


class _After(enum.Enum):
    """What the async part of a submit does once the decision is taken."""

    RESPOND = "respond"
    DROP = "drop"
    SLOW = "slow"


def _seconds_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class Simulator:
    """The fake provider: an ASGI 3 app with seeded faults and an injectable clock.

    ``config`` holds the knobs (change them with :meth:`configure`), ``stats()``
    the accounting, ``task(task_id)`` a snapshot of one task. State is guarded
    by a lock, so a test thread may read stats while a server thread serves.
    """

    def __init__(self, config: SimConfig | None = None, *, clock: Clock | None = None) -> None:
        self._config = config or SimConfig()
        self._clock: Clock = clock or time.monotonic
        self._rng = random.Random(self._config.seed)
        self._lock = threading.RLock()
        self._signer = UrlSigner()
        self._tasks: dict[str, SimTask] = {}
        self._accepted_by_body: collections.Counter[str] = collections.Counter()
        self._responses: collections.Counter[str] = collections.Counter()
        self._submit_times: collections.deque[float] = collections.deque()
        self._polls = 0
        self._downloads = 0
        self._wall_origin = time.time()
        self._clock_origin = self._clock()

    # -- public surface ---------------------------------------------------

    @property
    def config(self) -> SimConfig:
        return self._config

    @property
    def clock(self) -> Clock:
        return self._clock

    def configure(self, **changes: Any) -> SimConfig:
        """Change knobs at run time (validated; UsageError names a bad one). A new seed re-seeds."""
        with self._lock:
            new = parse_config(self._config, **changes)
            if "seed" in changes:
                self._rng.seed(new.seed)
            self._config = new
            return new

    def stats(self) -> dict[str, Any]:
        """Accounting: accepted (paid) tasks, per body hash, per task, per response kind."""
        with self._lock:
            now = self._clock()
            tasks: dict[str, dict[str, Any]] = {}
            for task in self._tasks.values():
                status = task.progress(now).status
                done = status is TaskStatus.SUCCEED
                tasks[task.task_id] = {
                    "body_sha256": task.body_sha256,
                    "status": status.value,
                    "video_sha256": task.video_sha256() if done else None,
                    "video_bytes": task.video().length if done else None,
                }
            return {
                "accepted_total": len(self._tasks),
                "accepted_by_body": dict(self._accepted_by_body),
                "tasks": tasks,
                "responses": dict(sorted(self._responses.items())),
                "polls": self._polls,
                "downloads": self._downloads,
            }

    def task(self, task_id: str) -> TaskSnapshot:
        """A snapshot of one task (KeyError if the simulator never created it)."""
        with self._lock:
            task = self._tasks[task_id]
            progress = task.progress(self._clock())
            done = progress.status is TaskStatus.SUCCEED
            return TaskSnapshot(
                task_id=task.task_id,
                body=dict(task.body),
                body_sha256=task.body_sha256,
                status=progress.status,
                reason=(task.fail_reason or "") if progress.status is TaskStatus.FAILED else "",
                eta=progress.eta,
                progress_percent=progress.progress_percent,
                submitted_at=task.submitted_at,
                finishes_at=task.finishes_at,
                video_sha256=task.video_sha256() if done else None,
                video_bytes=task.video().length if done else None,
            )

    def task_ids(self) -> list[str]:
        """Ids of every task created so far, oldest first."""
        with self._lock:
            return list(self._tasks)

    def video(self, task_id: str) -> bytes:
        """The exact bytes a download of this task's video returns (KeyError if unknown)."""
        with self._lock:
            task = self._tasks[task_id]
        return task.video().read()

    # -- ASGI -------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the simulator serves HTTP only, not {scope['type']!r}")
        try:
            request = await Request.read(scope, receive)
        except BodyTooLarge:
            response = envelope(413, "INVALID_REQUEST_BODY", "request body is larger than 1 MiB")
        else:
            response = await self._dispatch(request)
        await response.send(send)

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, req: Request) -> Response:
        path = req.path
        if path == TASK_RESULT_PATH:
            if req.method != "GET":
                return self._not_allowed("task_result", req)
            return self._task_result(req)
        if path.startswith(_SUBMIT_PREFIX):
            if req.method != "POST":
                return self._not_allowed("submit", req)
            return await self._submit(req, path.removeprefix(_SUBMIT_PREFIX))
        task_id = video_task_id(path)
        if task_id is not None:
            if req.method != "GET":
                return self._not_allowed("download", req)
            return self._download(req, task_id)
        if path == "/_sim/stats" and req.method == "GET":
            return json_response(200, self.stats())
        if path == "/_sim/config":
            return self._config_route(req)
        self._count("other", "api_not_found")
        return envelope(404, "API_NOT_FOUND", f"no API at {req.method} {path}")

    # -- helpers ----------------------------------------------------------

    def _count(self, route: str, kind: str) -> None:
        with self._lock:
            self._responses[f"{route}:{kind}"] += 1

    def _roll(self, probability: float) -> bool:
        """One seeded draw; probabilities 0 and 1 draw nothing, so they do not shift the sequence."""
        if probability <= 0.0:
            return False
        if probability >= 1.0:
            return True
        return self._rng.random() < probability

    def _not_allowed(self, route: str, req: Request) -> Response:
        self._count(route, "method_not_allowed")
        return envelope(405, "METHOD_NOT_ALLOWED", f"{req.method} is not allowed on {req.path}")

    def _auth(self, req: Request, route: str) -> Response | None:
        """None when the Bearer key is acceptable, else the 401/403 to send. Never echoes the key."""
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            self._count(route, "missing_key")
            return envelope(
                401, "MISSING_API_KEY", "missing API key: send the header 'Authorization: Bearer <key>'"
            )
        expected = self._config.api_key
        if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
            self._count(route, "invalid_key")
            return envelope(403, "INVALID_API_KEY", "invalid API key")
        return None

    @staticmethod
    def _caller_key(req: Request) -> str:
        """The key the caller sent (for the ``echo_key`` fault only)."""
        return req.headers.get("authorization", "").partition(" ")[2].strip()

    def _wall_ms(self, at: float) -> str:
        return str(int((self._wall_origin + at - self._clock_origin) * 1000))

    def _admit(self, now: float, rpm: int) -> bool:
        """The sliding-window rpm limiter: True when this submit fits in the last 60 s."""
        window = self._submit_times
        while window and window[0] <= now - RPM_WINDOW_SECONDS:
            window.popleft()
        if len(window) >= rpm:
            return False
        window.append(now)
        return True

    def _create(self, body: dict[str, Any], cfg: SimConfig, now: float) -> SimTask:
        """Create (and so charge for) a task. Ids are random, not seeded: a restarted
        simulator must never hand out an id an earlier one gave to another job."""
        fail_reason = self._rng.choice(FAILURE_REASONS) if self._roll(cfg.p_task_failed) else None
        body_sha256 = hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()
        task = SimTask(
            task_id=str(uuid.uuid4()),
            body=body,
            body_sha256=body_sha256,
            submitted_at=now,
            task_seconds=cfg.task_seconds,
            queue_fraction=cfg.queue_fraction,
            fail_reason=fail_reason,
            video_min_bytes=cfg.video_bytes,
        )
        self._tasks[task.task_id] = task
        self._accepted_by_body[body_sha256] += 1
        return task

    # -- submit -----------------------------------------------------------

    async def _submit(self, req: Request, slug: str) -> Response:
        response, after, delay = self._decide_submit(req, slug)
        if after is _After.DROP:
            raise DropConnection("submit: task created, connection dropped before the response")
        if after is _After.SLOW:
            await anyio.sleep(delay)
        return response

    def _decide_submit(self, req: Request, slug: str) -> tuple[Response, _After, float]:
        route = "submit"
        denied = self._auth(req, route)
        if denied is not None:
            return denied, _After.RESPOND, 0.0
        if slug not in endpoints.slugs():
            self._count(route, "api_not_found")
            return envelope(404, "API_NOT_FOUND", f"unknown API /v3/async/{slug}"), _After.RESPOND, 0.0
        with self._lock:
            cfg = self._config
            now = self._clock()
            if cfg.rpm is not None and not self._admit(now, cfg.rpm):
                self._count(route, "rpm_limited")
                headers = [] if cfg.retry_after is None else [("Retry-After", _seconds_header(cfg.retry_after))]
                message = f"rate limit exceeded: at most {cfg.rpm} requests per minute"
                return envelope(429, "RATE_LIMIT_EXCEEDED", message, headers=headers), _After.RESPOND, 0.0
            parsed, problem = check_body(endpoints.get(slug), req.body)
            if problem is not None:
                self._count(route, "invalid_body")
                response = envelope(400, "INVALID_REQUEST_BODY", problem.message, metadata={"errors": problem.errors})
                return response, _After.RESPOND, 0.0
            return self._submit_faults(parsed, cfg, now)

    def _submit_faults(self, body: dict[str, Any], cfg: SimConfig, now: float) -> tuple[Response, _After, float]:
        route = "submit"
        if self._roll(cfg.p_rate_limit):
            self._count(route, "rate_limit")
            retry_after = _seconds_header(cfg.retry_after if cfg.retry_after is not None else 1.0)
            response = envelope(429, "RATE_LIMIT_EXCEEDED", "rate limit exceeded", headers=[("Retry-After", retry_after)])
            return response, _After.RESPOND, 0.0
        if self._roll(cfg.p_rate_limit_no_retry_after):
            self._count(route, "rate_limit_no_retry_after")
            return envelope(429, "RATE_LIMIT_EXCEEDED", "rate limit exceeded"), _After.RESPOND, 0.0
        if self._roll(cfg.p_create_failed):
            self._count(route, "create_failed")
            return envelope(500, "CREATE_TASK_FAILED", "failed to create task"), _After.RESPOND, 0.0
        if self._roll(cfg.p_gateway):
            status = self._rng.choice((502, 504))
            created = self._roll(cfg.gateway_created_fraction)
            if created:
                self._create(body, cfg, now)
            self._count(route, f"gateway_{status}" + ("_created" if created else ""))
            return html_page(status), _After.RESPOND, 0.0
        task = self._create(body, cfg, now)
        ok = json_response(200, {"task_id": task.task_id})
        if self._roll(cfg.p_drop):
            self._count(route, "drop")
            return ok, _After.DROP, 0.0
        if self._roll(cfg.p_slow):
            self._count(route, "slow")
            return ok, _After.SLOW, cfg.slow_seconds
        if self._roll(cfg.p_long_task_id):
            self._count(route, "long_task_id")
            return json_response(200, {"task_id": task.task_id + "0" * LONG_TASK_ID}), _After.RESPOND, 0.0
        if self._roll(cfg.p_malformed):
            self._count(route, "malformed")
            content_type, raw = self._rng.choice(_MALFORMED_BODIES)
            return raw_response(200, content_type, raw), _After.RESPOND, 0.0
        self._count(route, "ok")
        return ok, _After.RESPOND, 0.0

    # -- task-result ------------------------------------------------------

    def _task_result(self, req: Request) -> Response:
        route = "task_result"
        denied = self._auth(req, route)
        if denied is not None:
            return denied
        with self._lock:
            cfg = self._config
            now = self._clock()
            self._polls += 1
            if self._roll(cfg.p_poll_error):
                status = self._rng.choice((500, 503))
                self._count(route, f"poll_error_{status}")
                if status == 503:
                    return html_page(503)
                return envelope(500, "GET_RESULT_FAILED", "failed to get task result")
            task_id = req.query.get("task_id", "")
            if not task_id:
                self._count(route, "bad_request")
                return envelope(400, "INVALID_REQUEST_BODY", "query parameter task_id is required")
            task = self._tasks.get(task_id)
            if task is None or task.forgotten(now, cfg.task_retention_seconds):
                self._count(route, "not_found")
                return envelope(404, "TASK_NOT_FOUND", f"task {task_id} not found")
            progress = task.progress(now)
            echoed = f"Bearer {self._caller_key(req)}" if cfg.echo_key else ""
            videos: list[dict[str, str]] = []
            if progress.status is TaskStatus.SUCCEED:
                expired = self._roll(cfg.p_expired_url)
                expires = now - 1.0 if expired else now + cfg.video_url_ttl
                url = self._signer.sign(req.base_url, task.task_id, expires=expires)
                videos.append({"video_url": url, "video_url_ttl": str(cfg.video_url_ttl), "video_type": "mp4"})
                self._count(route, "expired_url" if expired else "ok")
            else:
                self._count(route, "ok")
            started = progress.status is not TaskStatus.QUEUED
            body = {
                "task": {
                    "task_id": task.task_id,
                    "task_type": TASK_TYPE,
                    "status": progress.status.value,
                    "reason": (f"{task.fail_reason} (request {echoed})" if echoed else task.fail_reason or "")
                    if progress.status is TaskStatus.FAILED
                    else "",
                    "eta": progress.eta,
                    "progress_percent": progress.progress_percent,
                },
                "videos": videos,
                "images": [],
                "audios": [],
                "extra": {
                    "seed": "",
                    "enable_nsfw_detection": False,
                    "debug_info": {
                        "request_info": f"Authorization: {echoed}" if echoed else "",
                        "submit_time_ms": self._wall_ms(task.submitted_at),
                        "execute_time_ms": self._wall_ms(task.executes_at) if started else "",
                        "complete_time_ms": self._wall_ms(task.finishes_at) if progress.status.terminal else "",
                    },
                },
            }
            if cfg.huge_numbers:
                return raw_response(200, "application/json", _with_huge_numbers(body))
            return json_response(200, body)

    # -- download ---------------------------------------------------------

    def _download(self, req: Request, task_id: str) -> Response:
        route = "download"
        with self._lock:
            cfg = self._config
            now = self._clock()
            check = self._signer.check(task_id, req.query, now=now)
            if not check.ok:
                self._count(route, "expired" if check.code == "AccessDenied" else "bad_signature")
                return xml_error(403, check.code, check.message, resource=req.path)
            task = self._tasks.get(task_id)
            if task is None or task.progress(now).status is not TaskStatus.SUCCEED:
                self._count(route, "not_found")
                return xml_error(404, "NoSuchKey", "The specified key does not exist.", resource=req.path)
            self._downloads += 1
            video = task.video()
            response = Response(200, "video/mp4", video.chunks(), video.length)
            if self._roll(cfg.p_truncated):
                self._count(route, "truncated")
                response.drop_after = video.length // 2
            else:
                self._count(route, "ok")
            return response

    # -- control ----------------------------------------------------------

    def _config_route(self, req: Request) -> Response:
        if req.method == "GET":
            return json_response(200, self._config.public_dict())
        if req.method != "POST":
            return self._not_allowed("sim", req)
        try:
            changes = parse_changes(req.body)
            config = self.configure(**changes)
        except UsageError as exc:
            self._count("sim", "bad_request")
            return envelope(400, "INVALID_REQUEST_BODY", exc.message)
        self._count("sim", "configured")
        log.info("simulator reconfigured: %s", sorted(changes))
        return json_response(200, config.public_dict())

