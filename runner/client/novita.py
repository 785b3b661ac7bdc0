"""The Novita async API client: submit, task-result, download.

:class:`NovitaClient` wraps an injected ``httpx.AsyncClient`` (built by
:func:`~runner.client.make_http_client` at the edge, or around a test
transport). Two kinds of call, kept apart:

* ``submit`` POSTs once and **never** retries or raises for an HTTP or
  network outcome: it returns a classified
  :class:`~runner.client.SubmitResult` that the engine records.
* ``task_result`` and ``download`` are idempotent GETs, retried here with
  full-jitter exponential backoff (``Retry-After`` honoured), then translated
  into :mod:`runner.errors` exceptions.

The API key lives in a ``pydantic.SecretStr``; it is added to the provider
requests only and scrubbed from every message we build.
"""

from __future__ import annotations

import errno
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from pydantic import SecretStr, ValidationError

from runner.client.balance import Balance, read_balance
from runner.client.body import sent_once
from runner.client.connection import exchange_deadline, redact, validate_api_key
from runner.client.deadline import PAUSE_TICK_S, ActiveDeadline
from runner.client.download import DownloadLimits, MediaCheck, OpenSink, fetch_video
from runner.client.retry import backoff_delay, parse_retry_after
from runner.client.submit import (
    NO_DESCRIPTOR,
    NOT_SENT_NOTE,
    PROGRAM_CHANGED,
    NotSent,
    SubmitOutcome,
    SubmitResult,
    build_answer_models,
    classify_exception,
    classify_response,
    error_message,
    read_envelope,
)
from runner.client.unreachable import tunnel_cause
from runner.client.untrusted import MalformedBody, load_json, scrub
from runner.errors import (
    AuthError,
    EndpointNotFound,
    ProviderError,
    RateLimited,
    RequestRejected,
    TaskNotFound,
    TransientError,
)
from runner.novita_wire import TASK_RESULT_PATH, TaskResult
from runner.storage.api import Stored

__all__ = ["NovitaClient"]

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]  # httpx's "trace" extension: called as a request goes
log = logging.getLogger("runner.client")

# Failures of a GET worth trying again.
_TRANSIENT: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
)


class _GetRetry(Exception):
    """Internal: this task-result attempt failed in a way worth retrying."""

    def __init__(
        self, message: str, *, status: int | None = None, reason: str | None = None,
        retry_after: float | None = None, rate_limited: bool = False,
    ) -> None:
        self.message = message
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        super().__init__(message)


class NovitaClient:
    """Client of Novita's ``/v3/async`` API (Kling v3.0 Pro text-to-video and siblings)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        get_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
        download_limits: DownloadLimits | None = None,
        pause_tick: float | None = PAUSE_TICK_S,
    ) -> None:
        self._http = http
        self._download_limits = download_limits if download_limits is not None else DownloadLimits()
        self._base_url = base_url.strip().rstrip("/")
        self._key = SecretStr(validate_api_key(api_key))
        self._get_attempts = max(1, get_attempts)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._pause_tick = pause_tick  # None: the submit's read timeout is httpx's own (paused time counts)
        self._submit_urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"NovitaClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        """The provider base URL, without a trailing slash."""
        return self._base_url

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key.get_secret_value()}"}

    def _clean(self, text: str) -> str:
        return redact(text, self._key)

    # -- submit ---------------------------------------------------------------

    async def submit(self, model: str, body: dict[str, Any] | bytes, *,
                     may_send: Callable[[], bool] | None = None) -> SubmitResult:
        """POST ``body`` to ``/v3/async/{model}`` exactly once and classify the outcome.

        ``body`` is the JSON object, or its bytes already encoded (:mod:`runner.client.body`: a body carrying
        files inline), sent as they are and not kept by the request (:func:`~runner.client.body.sent_once`).
        Never raises for an HTTP or network outcome (cancellation still propagates). A body that cannot be
        encoded is refused before sending. ``may_send`` is asked once more as the request's first byte is about
        to go (after any wait for a connection, a connect, a stalled loop): False, and nothing is sent — a refusal
        of reason ``NOT_SENT`` (a transport that traces nothing, as a test's, is not asked).
        """
        deadline = ActiveDeadline.for_client(self._http.timeout, tick=self._pause_tick)
        try:
            build_answer_models()  # nothing between the POST and its answer's record imports a module
        except OSError as exc:  # no descriptor left to import with (ulimit -n): not sent, the job stays pending
            return SubmitResult(outcome=SubmitOutcome.REFUSED, retryable=True,
                                reason=NO_DESCRIPTOR if exc.errno == errno.EMFILE else type(exc).__name__,
                                message=self._clean(f"request not sent: {exc} (nothing was created)"))
        except ImportError as exc:  # runner's (or pydantic's) files changed under this process: not sent, stays pending
            return SubmitResult(outcome=SubmitOutcome.REFUSED, retryable=True, reason=PROGRAM_CHANGED,
                                message=self._clean(f"request not sent: {type(exc).__name__}: {exc} (nothing was created)"))
        try:
            url = self._submit_urls.get(model)
            if url is None:  # parsed once a model (half of building a POST)
                url = self._submit_urls[model] = httpx.URL(f"{self._base_url}/v3/async/{quote(model, safe='')}")
            content, data = (sent_once(body), None) if isinstance(body, bytes) else (None, body)
            headers = self._auth()
            if content is not None:  # as json= sends it: its length and type (the request keeps no reference to it)
                headers["Content-Length"], headers["Content-Type"] = str(len(body)), "application/json"
            trace: Trace | None = None if deadline is None else deadline.trace
            if may_send is not None:
                trace = _asking(trace, may_send)
            tunnel = _Tunnel(trace)  # a proxy's CONNECT made for this POST, and whether the POST's own bytes went
            request = self._http.build_request(  # httpx's own defaults where there is no deadline
                "POST", url, content=content, json=data, headers=headers, extensions={"trace": tunnel},
                timeout=httpx.USE_CLIENT_DEFAULT if deadline is None else deadline.request_timeout,
            )
        except (TypeError, ValueError, httpx.InvalidURL) as exc:
            return SubmitResult(
                outcome=SubmitOutcome.REFUSED,
                reason=type(exc).__name__,
                message=self._clean(f"request not sent, it cannot be built: {type(exc).__name__}: {exc}"),
            )
        try:
            if deadline is None:
                response = await self._http.send(request, follow_redirects=False)
            else:
                response = await deadline.send(self._http, request)
        except Exception as exc:  # every transport failure must be classified
            result = classify_exception(exc, secret=self._key)
            if result.outcome is SubmitOutcome.AMBIGUOUS and tunnel.unanswered(exc):
                result = SubmitResult(outcome=SubmitOutcome.REFUSED, retryable=True, reason=result.reason,
                                      message=self._clean(f"{tunnel_cause(request.url, exc)} ({NOT_SENT_NOTE})"))
        else:
            try:
                result = classify_response(response, secret=self._key)
            except Exception as exc:  # an answer we failed to read is in doubt, never a crash
                result = classify_exception(exc, secret=self._key)
        if result.outcome is SubmitOutcome.AMBIGUOUS:
            log.warning("submit to %s is in doubt: %s", model, result.message)
        elif result.outcome is SubmitOutcome.REFUSED:
            log.info("submit to %s refused: %s", model, result.message)
        return result

    # -- task-result ----------------------------------------------------------

    async def task_result(self, task_id: str) -> TaskResult:
        """GET the task's status and results, retrying transient failures.

        Raises AuthError (401/403), TaskNotFound (404 TASK_NOT_FOUND),
        EndpointNotFound (404 API_NOT_FOUND or a 404 page: a wrong base URL),
        RequestRejected (other 4xx), or after ``get_attempts`` tries
        TransientError. A 429 is not retried here: RateLimited (``retry_after``
        as the header said, or None) is raised at once, so the caller's one
        shared limiter paces every poll (per-request retries would hammer a
        provider that is shedding load).
        """
        url = f"{self._base_url}{TASK_RESULT_PATH}"
        last: _GetRetry | None = None
        for attempt in range(self._get_attempts):
            if last is not None:
                delay = (
                    last.retry_after
                    if last.retry_after is not None
                    else backoff_delay(attempt - 1, base=self._backoff_base, cap=self._backoff_max, rng=self._rng)
                )
                log.info(
                    "task-result %s: retry %d/%d in %.2f s after %s",
                    task_id, attempt + 1, self._get_attempts, delay, last.message,
                )
                await self._sleep(delay)
            try:
                return await self._task_result_once(url, task_id)
            except _GetRetry as exc:
                last = exc
                if exc.rate_limited:
                    break
        assert last is not None
        tries = f"(task {task_id}, gave up after {attempt + 1} of {self._get_attempts} attempts)"
        if last.rate_limited:
            raise RateLimited(
                self._clean(f"{last.message} (task {task_id}; the caller's limiter waits)"),
                status=last.status, reason=last.reason or "RATE_LIMIT_EXCEEDED", retry_after=last.retry_after,
            ) from last
        raise TransientError(
            self._clean(f"{last.message} {tries}"), status=last.status, reason=last.reason
        ) from last

    async def _task_result_once(self, url: str, task_id: str) -> TaskResult:
        deadline = exchange_deadline(self._http.timeout)  # a body that trickles would hold the poll for good
        try:
            with anyio.fail_after(deadline):
                # The query spliced here, not httpx's ``params=`` (merging QueryParams costs ~50 us a poll).
                response = await self._http.get(f"{url}?task_id={quote(task_id, safe='')}", headers=self._auth())
        except TimeoutError:
            raise _GetRetry(f"no whole answer within {deadline:g} s (its timeouts together)") from None
        except _TRANSIENT as exc:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise _GetRetry(self._clean(text)) from exc
        except httpx.HTTPError as exc:
            raise ProviderError(
                self._clean(f"task-result for {task_id} failed: {type(exc).__name__}: {exc}")
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = load_json(response.content)
                if not isinstance(data, dict):
                    raise MalformedBody("not a JSON object")
                # Scrubbed before it becomes our type: a reason or debug_info quoting the key is
                # never stored, exported or shown.
                result = TaskResult.model_validate(scrub(data, self._key))
            except (MalformedBody, ValidationError) as exc:
                # Not chained: the parser's message quotes the body, which we do not control.
                raise _GetRetry(
                    f"HTTP {status} with a malformed task-result body ({type(exc).__name__})", status=status
                ) from None
            named = result.task.task_id
            if named and named != task_id:  # another task's answer: its video is not this job's
                raise _GetRetry(self._clean(f"HTTP {status}: the answer is for task {named[:80]!r}, not the one"
                                            f" asked ({task_id})"), status=status)
            return result

        envelope = read_envelope(response, self._key)
        reason = envelope.reason if envelope else None
        described = self._clean(
            f"HTTP {status}"
            + (f" {reason}" if reason else "")
            + (f": {detail}" if (detail := error_message(response, envelope, self._key)) else "")
        )
        if status == 429:
            raise _GetRetry(
                described, status=status, reason=reason or "RATE_LIMIT_EXCEEDED",
                retry_after=parse_retry_after(response.headers.get("retry-after")), rate_limited=True,
            )
        if status >= 500:
            raise _GetRetry(described, status=status, reason=reason)
        if status in (401, 403) or reason == "MISSING_API_KEY":
            raise AuthError(
                f"task-result for {task_id}: {described}; the API key is missing, wrong or not allowed "
                "(check NOVITA_API_KEY)",
                status=status, reason=reason,
            )
        if status == 404 and (envelope is None or reason == "API_NOT_FOUND"):
            raise EndpointNotFound(
                f"task-result: HTTP {status} {reason or 'page'}: there is no API at {url}; the base URL is wrong"
                " — fix --base-url or NOVITA_BASE_URL (the API lives at https://api.novita.ai)",
                status=status, reason=reason,
            )
        if status == 404 and reason == "TASK_NOT_FOUND":
            raise TaskNotFound(
                f"the provider does not know task {task_id} ({described})", status=status, reason=reason
            )
        if 400 <= status < 500:
            raise RequestRejected(f"task-result for {task_id}: {described}", status=status, reason=reason)
        raise ProviderError(f"task-result for {task_id}: unexpected {described}", status=status, reason=reason)

    # -- download -------------------------------------------------------------

    async def download(self, url: str, open_sink: OpenSink, *, check_media: MediaCheck | None = None) -> Stored:
        """Fetch a result URL into a sink of an output store; see :mod:`runner.client.download`.

        ``open_sink`` opens a new sink for each attempt; the store decides where
        the committed bytes go (never over another file) and says so in the
        returned :class:`~runner.storage.api.Stored`.

        The request carries no Authorization header. Raises UrlExpired (do not
        retry; get a fresh URL from task_result) or DownloadError (also past the
        size cap or the deadline of the client's DownloadLimits).
        """
        return await fetch_video(
            self._http,
            url,
            open_sink,
            attempts=self._get_attempts,
            backoff_base=self._backoff_base,
            backoff_max=self._backoff_max,
            sleep=self._sleep,
            rng=self._rng,
            limits=self._download_limits,
            check_media=check_media,
        )

    # -- balance --------------------------------------------------------------

    async def balance(self) -> Balance:
        """GET the account balance (:mod:`runner.client.balance`) with the GET retry rules; ProviderError
        when the provider cannot tell (no route, refused, gave up)."""
        return await read_balance(self._http, self._base_url, self._auth(), attempts=self._get_attempts,
                                  backoff_base=self._backoff_base, backoff_max=self._backoff_max,
                                  sleep=self._sleep, rng=self._rng)


def _asking(trace: Trace | None, may_send: Callable[[], bool]) -> Trace:
    """``trace`` (the submit's deadline's, or none), then ``may_send`` asked as the request's headers are about to
    go: the transport has its connection and writes nothing before this returns; :class:`NotSent` when it says no."""

    async def asking(name: str, info: dict[str, Any]) -> None:
        if trace is not None:
            await trace(name, info)
        if name.endswith("send_request_headers.started") and not may_send():
            raise NotSent("its caller's last check, at the request's first byte, said no")

    return asking


class _Tunnel:
    """A submit's trace (``inner``'s, if any, called as before) noting whether a proxy's tunnel was opened for it
    (httpcore traces the ``CONNECT`` with the request's own trace) and whether the POST's first byte was about to go.

    A proxy that closed, reset or never answered that CONNECT (a restart, an upstream it cannot reach) failed the
    submit before any byte of the POST left: nothing was created. It was taken as in doubt (ReadTimeout,
    RemoteProtocolError), and the job held for a person as "may have been paid"."""

    __slots__ = ("_inner", "opened", "posted")

    def __init__(self, inner: Trace | None) -> None:
        self._inner = inner
        self.opened = False  # a CONNECT went to a proxy for this request
        self.posted = False  # the POST's own headers were about to go (through the tunnel, or directly)

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if name.endswith("send_request_headers.started"):
            if getattr(info.get("request"), "method", None) == b"CONNECT":
                self.opened = True
            else:
                self.posted = True
        if self._inner is not None:
            await self._inner(name, info)

    def unanswered(self, exc: Exception) -> bool:
        """Whether ``exc`` ended the submit while its tunnel was being opened: the POST not begun."""
        return self.opened and not self.posted and isinstance(exc, httpx.TransportError)
