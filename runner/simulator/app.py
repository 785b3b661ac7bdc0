"""The simulated Novita async API, as an ASGI 3 app: routing, the public surface, the knobs.

Routes (see ``docs/provider.md`` for the real API):

- ``POST /v3/async/<slug>`` — submit (:mod:`~runner.simulator.submit`); Bearer
  auth (:mod:`~runner.simulator.auth`), body validated by the endpoint's spec
  (``runner.endpoints``: the same rules the runner plans with), then the rpm
  limit and the seeded faults, then ``200 {"task_id": …}``. Every registered
  endpoint is served; its video's size and length follow the request
  (:mod:`~runner.simulator.outputs`).
- ``GET /v3/async/task-result?task_id=`` — the task as it stands on the
  simulator's clock, with a freshly signed video URL once it succeeded
  (:mod:`~runner.simulator.results`).
- ``GET /_sim/videos/<task_id>.mp4?expires=&n=&sig=`` — the presigned video
  URL (no Bearer key); 403 with an S3-style XML body once expired or forged.
- ``GET /openapi/v1/billing/balance/detail`` (and ``/v3/user/balance``) — the account balance
  (:mod:`~runner.simulator.balance`; the ``balance_usd`` knob).
- ``GET /_sim/stats`` — accounting, so tests can prove nothing was paid twice.
- ``GET|POST /_sim/config`` — read or change the knobs at run time.
- ``POST /_sim/release-slow`` — send the ``p_slow`` answers held now at once (:meth:`Simulator.release_slow`).

Every answer is counted in ``stats()["responses"]`` under ``"<route>:<kind>"``;
routes are ``submit``, ``task_result``, ``download``, ``balance``, ``sim`` (control) and
``other`` (unknown paths); kinds say what happened (``ok``, ``missing_key``, ``invalid_key``, ``invalid_body``,
``api_not_found``, ``rpm_limited``, ``rate_limit``, ``rate_limit_no_retry_after``,
``concurrency_limited``, ``refused_<status>_<reason>``, ``create_failed`` and
``gateway_502``/``gateway_504`` with ``_created`` when a task was made first, ``drop``,
``slow``, ``long_task_id``, ``malformed``, ``duplicate_task_id``, ``not_found``,
``poll_error_500``, ``poll_error_503``, ``status_unknown``, ``expired_url``, ``bad_request``,
``expired``, ``bad_signature``, ``truncated``, ``method_not_allowed``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from runner.errors import UsageError
from runner.novita_wire import TASK_RESULT_PATH, TaskStatus
from runner.simulator.asgi import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    envelope,
    json_response,
)
from runner.simulator.balance import BALANCE_PATHS, balance
from runner.simulator.config import Clock, SimConfig, parse_changes, parse_config
from runner.simulator.results import download, task_result
from runner.simulator.state import SimState
from runner.simulator.submit import submit
from runner.simulator.tasks import TaskSnapshot
from runner.simulator.urls import video_task_id

__all__ = ["Simulator"]

log = logging.getLogger(__name__)

_SUBMIT_PREFIX = "/v3/async/"


class Simulator:
    """The fake provider: an ASGI 3 app with seeded faults and an injectable clock.

    ``config`` holds the knobs (change them with :meth:`configure`), ``stats()``
    the accounting, ``task(task_id)`` a snapshot of one task. State is guarded
    by a lock, so a test thread may read stats while a server thread serves.
    """

    def __init__(self, config: SimConfig | None = None, *, clock: Clock | None = None) -> None:
        self._state = SimState(config or SimConfig(), clock or time.monotonic)

    # -- public surface ---------------------------------------------------

    @property
    def config(self) -> SimConfig:
        return self._state.config

    @property
    def clock(self) -> Clock:
        return self._state.clock

    def configure(self, **changes: Any) -> SimConfig:
        """Change knobs at run time (validated; UsageError names a bad one). A new seed re-seeds."""
        state = self._state
        with state.lock:
            new = parse_config(state.config, **changes)
            if "seed" in changes:
                state.rng.seed(new.seed)
            state.config = new
            return new

    def release_slow(self) -> None:
        """Send every ``p_slow`` answer held now at once (each is held at most ``slow_seconds`` otherwise), so a
        test holds a POST on the wire until its own event, not for a wall time it guessed; later ones are held again."""
        self._state.release_slow()

    def stats(self) -> dict[str, Any]:
        """Accounting: accepted (paid) tasks, per body hash, per task, per response kind."""
        state = self._state
        with state.lock:
            now = state.clock()
            tasks: dict[str, dict[str, Any]] = {}
            for task in state.tasks.values():
                status = task.progress(now).status
                done = status is TaskStatus.SUCCEED
                tasks[task.task_id] = {
                    "body_sha256": task.body_sha256,
                    "status": status.value,
                    "video_sha256": task.video_sha256() if done else None,
                    "video_bytes": task.video().length if done else None,
                }
            return {
                "accepted_total": len(state.tasks),
                "max_active": state.max_active,
                "max_active_by_account": dict(state.max_active_by_account),
                "max_answered_by_account": dict(state.max_answered_by_account),
                "accepted_by_body": dict(state.accepted_by_body),
                "tasks": tasks,
                "responses": dict(sorted(state.responses.items())),
                "polls": state.polls,
                "downloads": state.downloads,
            }

    def task(self, task_id: str) -> TaskSnapshot:
        """A snapshot of one task (KeyError if the simulator never created it)."""
        state = self._state
        with state.lock:
            task = state.tasks[task_id]
            progress = task.progress(state.clock())
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
                slug=task.slug,
            )

    def restore(self, tasks: Iterable[tuple[str, str, Mapping[str, Any], float | None]]) -> int:
        """Know tasks an earlier simulator created — ``(task_id, slug, body, sent_at)``, ``sent_at`` a wall time (None:
        now) —, as the provider knows the tasks of a runner started again; how many. Paid for there: not counted in
        these books."""
        state = self._state
        known = 0
        with state.lock:
            for task_id, slug, body, sent_at in tasks:
                if task_id not in state.tasks:
                    state.restore(task_id, slug, dict(body), sent_at)
                    known += 1
        return known

    def task_ids(self) -> list[str]:
        """Ids of every task created so far, oldest first."""
        with self._state.lock:
            return list(self._state.tasks)

    def video(self, task_id: str) -> bytes:
        """The exact bytes a download of this task's video returns (KeyError if unknown)."""
        with self._state.lock:
            task = self._state.tasks[task_id]
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
            limit = f"{MAX_BODY_BYTES // (1024 * 1024)} MiB"
            response = envelope(413, "INVALID_REQUEST_BODY", f"request body is larger than {limit}")
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
        state = self._state
        path = req.path
        if path == TASK_RESULT_PATH:
            if req.method != "GET":
                return self._not_allowed("task_result", req)
            return task_result(state, req)
        if path.startswith(_SUBMIT_PREFIX):
            if req.method != "POST":
                return self._not_allowed("submit", req)
            return await submit(state, req, path.removeprefix(_SUBMIT_PREFIX))
        task_id = video_task_id(path)
        if task_id is not None:
            if req.method != "GET":
                return self._not_allowed("download", req)
            return download(state, req, task_id)
        if path in BALANCE_PATHS:
            return balance(state, req) if req.method == "GET" else self._not_allowed("balance", req)
        if path == "/_sim/stats" and req.method == "GET":
            return json_response(200, self.stats())
        if path == "/_sim/config":
            return self._config_route(req)
        if path == "/_sim/release-slow":
            if req.method != "POST":
                return self._not_allowed("sim", req)
            self.release_slow()
            state.count("sim", "released_slow")
            return json_response(200, {})
        state.count("other", "api_not_found")
        return envelope(404, "API_NOT_FOUND", f"no API at {req.method} {path}")

    def _not_allowed(self, route: str, req: Request) -> Response:
        self._state.count(route, "method_not_allowed")
        return envelope(405, "METHOD_NOT_ALLOWED", f"{req.method} is not allowed on {req.path}")

    # -- control ----------------------------------------------------------

    def _config_route(self, req: Request) -> Response:
        if req.method == "GET":
            return json_response(200, self.config.public_dict())
        if req.method != "POST":
            return self._not_allowed("sim", req)
        try:
            changes = parse_changes(req.body)
            config = self.configure(**changes)
        except UsageError as exc:
            self._state.count("sim", "bad_request")
            return envelope(400, "INVALID_REQUEST_BODY", exc.message)
        self._state.count("sim", "configured")
        log.info("simulator reconfigured: %s", sorted(changes))
        return json_response(200, config.public_dict())
