"""The simulated reads: ``GET /v3/async/task-result`` and the presigned video download.

task-result answers the task as it stands on the simulator's clock, with a freshly signed video
URL once it succeeded; the download serves the task's MP4 (:mod:`~runner.simulator.media`)
without a Bearer key, 403 with an S3-style XML body once the URL expired or was forged. As S3 does, a
download carries a strong ``ETag`` and answers ``Range: bytes=N-`` (with a matching ``If-Range``) with a 206
and the file's tail.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from runner.novita_wire import TaskStatus
from runner.simulator.asgi import Request, Response, envelope, html_page, json_response, raw_response, xml_error
from runner.simulator.auth import caller_key, check_key
from runner.simulator.state import SimState, account_of
from runner.simulator.submit import seconds_header
from runner.simulator.tasks import Progress, SimTask, task_type

__all__ = ["HUGE_NUMBER", "download", "task_result"]

HUGE_NUMBER = "9" * 400


def _with_huge_numbers(body: dict[str, Any]) -> bytes:
    """``body`` as JSON with its numbers replaced by absurd ones (the ``huge_numbers`` fault)."""
    body["task"]["eta"] = float("inf")  # written as 1e400 below
    body["task"]["progress_percent"] = int(HUGE_NUMBER)
    for video in body["videos"]:
        video["video_url_ttl"] = HUGE_NUMBER
    debug = body.get("extra", {}).get("debug_info")
    if debug is not None:
        debug["submit_time_ms"], debug["complete_time_ms"] = float("inf"), int(HUGE_NUMBER)
    return json.dumps(body).replace("Infinity", "1e400").encode()


def task_result(state: SimState, req: Request) -> Response:
    """Answer one ``GET /v3/async/task-result?task_id=``."""
    route = "task_result"
    denied = check_key(req, state.config)
    if denied is not None:
        kind, response = denied
        state.count(route, kind)
        return response
    with state.lock:
        cfg = state.config
        now = state.clock()
        state.polls += 1
        shared = cfg.shared_rpm and cfg.rpm is not None and not state.admit(now, cfg.rpm)
        if shared or (cfg.poll_rpm is not None and not state.admit(now, cfg.poll_rpm, state.poll_times)):
            state.count(route, "rpm_limited")
            send = cfg.retry_after_header and cfg.retry_after is not None
            headers = [("Retry-After", seconds_header(cfg.retry_after or 0.0))] if send else []
            limit = f"{cfg.rpm} requests" if shared else f"{cfg.poll_rpm} task-result requests"
            message = f"rate limit exceeded: at most {limit} per minute"
            return envelope(429, "RATE_LIMIT_EXCEEDED", message, headers=headers)
        if state.roll(cfg.p_poll_error):
            status = state.rng.choice((500, 503))
            state.count(route, f"poll_error_{status}")
            if status == 503:
                return html_page(503)
            return envelope(500, "GET_RESULT_FAILED", "failed to get task result")
        task_id = req.query.get("task_id", "")
        if not task_id:
            state.count(route, "bad_request")
            return envelope(400, "INVALID_REQUEST_BODY", "query parameter task_id is required")
        task = state.tasks.get(task_id)
        others = task is not None and cfg.tasks_per_key and task.account != account_of(caller_key(req))
        if task is None or others or task.forgotten(now, cfg.task_retention_seconds):
            state.count(route, "not_found")
            return envelope(404, "TASK_NOT_FOUND", f"task {task_id} not found")
        real = progress = task.progress(now)
        if state.roll(cfg.p_status_unknown):
            progress = Progress(TaskStatus.UNKNOWN, real.eta, real.progress_percent)
            state.count(route, "status_unknown")
        echoed = f"Bearer {caller_key(req)}" if cfg.echo_key else ""
        videos: list[dict[str, str]] = []
        if progress.status is TaskStatus.SUCCEED:
            expired = state.roll(cfg.p_expired_url)
            expires = now - 1.0 if expired else now + cfg.video_url_ttl
            if cfg.fresh_urls or task.signed_url is None:
                url = state.signer.sign(req.base_url, task.task_id, expires=expires)
                task.signed_url = url
            else:  # the first answer's URL again, whatever its expiry
                url = task.signed_url
            videos.append({"video_url": url, "video_url_ttl": str(cfg.video_url_ttl), "video_type": "mp4"})
            state.count(route, "expired_url" if expired else "ok")
        elif progress.status is not TaskStatus.UNKNOWN:
            state.count(route, "ok")
        body = _body(state, task, progress, real, videos, echoed)
        if not cfg.extra_in_results:
            del body["extra"]
        if cfg.huge_numbers:
            return raw_response(200, "application/json", _with_huge_numbers(body))
        return json_response(200, body)


def _body(
    state: SimState, task: SimTask, progress: Progress, real: Progress, videos: list[dict[str, str]], echoed: str
) -> dict[str, Any]:
    """The task-result body: ``progress`` as answered, ``real`` (where the task stands) for debug_info."""
    failed = progress.status is TaskStatus.FAILED
    started = real.status is not TaskStatus.QUEUED
    reason = (f"{task.fail_reason} (request {echoed})" if echoed else task.fail_reason or "") if failed else ""
    return {
        "task": {
            "task_id": task.task_id,
            "task_type": task_type(task.slug),
            "status": progress.status.value,
            "reason": reason,
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
                "submit_time_ms": state.wall_ms(task.submitted_at),
                "execute_time_ms": state.wall_ms(task.executes_at) if started else "",
                "complete_time_ms": state.wall_ms(task.finishes_at) if real.status.terminal else "",
            },
        },
    }


def download(state: SimState, req: Request, task_id: str) -> Response:
    """Serve a presigned video URL (no Bearer key needed)."""
    route = "download"
    with state.lock:
        cfg = state.config
        now = state.clock()
        check = state.signer.check(task_id, req.query, now=now)
        if not check.ok:
            state.count(route, "expired" if check.code == "AccessDenied" else "bad_signature")
            return xml_error(403, check.code, check.message, resource=req.path)
        task = state.tasks.get(task_id)
        if task is None or task.progress(now).status is not TaskStatus.SUCCEED:
            state.count(route, "not_found")
            return xml_error(404, "NoSuchKey", "The specified key does not exist.", resource=req.path)
        state.downloads += 1
        video = task.video()
        etag = f'"{hashlib.sha256(task_id.encode()).hexdigest()[:32]}"'  # a strong validator, as S3's ETag is
        headers = [("ETag", etag), ("Accept-Ranges", "bytes")]
        start = _range_start(req.headers, etag)
        if start >= video.length:
            state.count(route, "range_not_satisfiable")
            return Response(416, "application/xml", iter(()), 0, [("Content-Range", f"bytes */{video.length}")])
        if start:
            state.count(route, "resumed")
            headers.append(("Content-Range", f"bytes {start}-{video.length - 1}/{video.length}"))
            response = Response(206, "video/mp4", video.chunks(start=start), video.length - start, headers)
        else:
            response = Response(200, "video/mp4", video.chunks(), video.length, headers)
        if state.roll(cfg.p_truncated):
            state.count(route, "truncated")
            response.drop_after = response.length // 2  # half of what this answer carries (a 206: of its range)
        else:
            state.count(route, "ok")
        return response


def _range_start(headers: dict[str, str], etag: str) -> int:
    """Where a ``Range: bytes=N-`` request asks the body to start (0: the whole file). As S3 does: any other
    form is answered whole, and so is an ``If-Range`` that names another version of the object."""
    asked = headers.get("range", "").strip()
    if not asked.startswith("bytes=") or not asked.endswith("-"):
        return 0
    if "if-range" in headers and headers["if-range"].strip() != etag:
        return 0
    first = asked[len("bytes="):-1].strip()
    return int(first) if first.isdigit() and len(first) <= 18 else 0
