"""Classifying the outcome of a submit POST — the money path.

A submit creates a paid task and the provider has no idempotency key and no
way to list tasks, so the only safe reaction to *not knowing* is to say so.
Every outcome of the POST falls in one of three classes:

* ``ACCEPTED``  — a 2xx with ``{"task_id": "<non-empty>"}``: record the id.
* ``REFUSED``   — the provider (or the network, before sending) says no task
  was created. ``retryable`` when the same body may be sent later (429,
  connect errors, pool timeout, 5xx envelope ``CREATE_TASK_FAILED``); ``fatal``
  when the whole run must stop (401/403, ``MISSING_API_KEY``,
  ``BILLING_BALANCE_NOT_ENOUGH`` or any 402, and an ``unknown_route``: a 404
  ``API_NOT_FOUND`` or a 404 or 405 without the provider's envelope, i.e. a
  wrong base URL, a configuration error that is no fault of the job); otherwise
  permanent (other 4xx).
* ``AMBIGUOUS`` — the request may have reached the service and created a paid
  task whose id we never saw: read/write timeouts, dropped connections, 5xx
  gateway pages or other 5xx reasons, a 2xx we cannot read or whose task_id is
  implausible (see :func:`runner.client.untrusted.task_id_problem`; the raw value is
  kept, shortened and escaped, in the message), any unexpected status or
  transport error. Never retried automatically.

The status code decides: a body we cannot read (not JSON, nested too deep)
never turns a 4xx into anything but refused. Every provider string (reason,
message) is scrubbed of the API key here, before anyone stores or prints it.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from runner.client.connection import redact
from runner.client.retry import parse_retry_after
from runner.client.unreachable import connect_cause
from runner.client.untrusted import MalformedBody, load_json, scrub, shown, task_id_problem
from runner.novita_wire import ErrorEnvelope, SubmitResponse

__all__ = [
    "AMBIGUOUS_NOTE",
    "NOT_SENT",
    "NOT_SENT_NOTE",
    "NO_DESCRIPTOR",
    "POOL_BUSY",
    "PROGRAM_CHANGED",
    "TASK_TAKEN",
    "NotSent",
    "SubmitOutcome",
    "SubmitResult",
    "build_answer_models",
    "classify_exception",
    "classify_response",
    "error_message",
    "is_balance",
    "read_envelope",
    "taken",
]

FATAL_REASONS = frozenset({"MISSING_API_KEY", "BILLING_BALANCE_NOT_ENOUGH"})
CREATE_TASK_FAILED = "CREATE_TASK_FAILED"
API_NOT_FOUND = "API_NOT_FOUND"
TASK_TAKEN = "TASK_ID_TAKEN"  # an accepted answer naming a task another job holds (:func:`taken`)
AMBIGUOUS_NOTE = (
    "the task may have been created and paid for, but its task_id is unknown; "
    "do not resubmit blindly"
)
MESSAGE_MAX = 300
REASON_MAX = 100  # documented reasons are short upper-case names

# Exceptions raised before any byte of the request left this machine. A ProxyError is a proxy's refusal of the
# tunnel (CONNECT answered 407, 403…) or of its SOCKS handshake: raised before the request's first byte, it was
# taken as in doubt, and a 407 held every job of a batch for a person to decide, though none had been sent.
_NOT_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                          httpx.ProxyError)
NOT_SENT_NOTE = "the request was not sent; nothing was created"
NOT_SENT = "NOT_SENT"  # the reason of a POST its caller stopped at its first byte (:class:`NotSent`)
NO_DESCRIPTOR = "EMFILE"  # the reason of a connect this process had no file descriptor for (``ulimit -n``)
POOL_BUSY = httpx.PoolTimeout.__name__  # the reason of a request that waited out the pool timeout for a connection
# The reason of a POST not sent because building its answer's validator could not import a module: the program's files
# changed under this process (``pip install -U`` of runner or of pydantic, a ``git pull``) or the install is broken.
PROGRAM_CHANGED = "PROGRAM_CHANGED"


class NotSent(Exception):
    """The caller's last check, as the request's first byte was about to go (``submit(may_send=…)``), said no:
    nothing of the POST was sent. A refusal of reason :data:`NOT_SENT`, neither retryable by the client nor fatal:
    what it means is the caller's."""


class SubmitOutcome(enum.StrEnum):
    """What a submit POST did at the provider, as far as the client can know."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The classified outcome of one submit POST; see the module docstring."""

    outcome: SubmitOutcome
    task_id: str | None = None
    http_status: int | None = None
    reason: str | None = None
    message: str = ""
    retry_after: float | None = None
    retryable: bool = False
    fatal: bool = False
    unknown_route: bool = False  # 404 (405): no API at this URL (fatal too): the base URL is wrong


def _short(text: str, secret: SecretStr | None) -> str:
    text = redact(" ".join(text.split()), secret)
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


def read_envelope(response: httpx.Response, secret: SecretStr | None = None) -> ErrorEnvelope | None:
    """The provider's error envelope in ``response``, or None (gateway page, not JSON…).

    An envelope is a JSON object with a non-empty string ``reason``. Its
    strings come back with ``secret`` scrubbed.
    """
    try:
        data: Any = scrub(load_json(response.content), secret)
    except MalformedBody:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("reason"), str) or not data["reason"]:
        return None
    if len(data["reason"]) > REASON_MAX:
        data["reason"] = data["reason"][: REASON_MAX - 1] + "…"
    try:
        return ErrorEnvelope.model_validate(data)
    except ValidationError:
        return ErrorEnvelope(reason=data["reason"], message=str(data.get("message", "")))


def error_message(response: httpx.Response, envelope: ErrorEnvelope | None, secret: SecretStr | None = None) -> str:
    """What an error body says: the envelope's ``message``, else a bare ``message`` (a body without
    ``reason``, or ``{"error": {"message"}}``); "" when there is none. Scrubbed and shortened."""
    if envelope is not None and envelope.message:
        return envelope.message
    try:
        data: Any = scrub(load_json(response.content), secret)
    except MalformedBody:
        return ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]
    message = data.get("message") if isinstance(data, dict) else None
    return _short(message, secret) if isinstance(message, str) else ""


def _request_url(response: httpx.Response) -> str:
    """The URL the response answers, without a query string; "the provider" when unknown."""
    try:
        url = response.request.url
    except RuntimeError:  # a response built without its request (tests)
        return "this URL"
    return str(url.copy_with(query=None))


def _ambiguous(what: str, *, status: int | None, reason: str | None, secret: SecretStr | None) -> SubmitResult:
    return SubmitResult(
        outcome=SubmitOutcome.AMBIGUOUS,
        http_status=status,
        reason=reason,
        message=_short(f"{what}: {AMBIGUOUS_NOTE}", secret),
    )


def build_answer_models() -> None:
    """Build the validators :func:`classify_response` uses, if not built yet: called before a POST is sent.

    They are built on first use (``defer_build``: start-up, issue 14), and building one imports modules; after the
    POST that could fail (no file descriptor left: ``ulimit -n``) and turn an answer carrying its task id into one
    in doubt. Raises an OSError or an ImportError (a module the process has not loaded yet changed or went away since
    it started: an upgrade under a run) when it cannot be done; nothing is sent yet."""
    for model in (SubmitResponse, ErrorEnvelope):
        if not model.__pydantic_complete__:
            model.model_rebuild()


def classify_response(response: httpx.Response, *, secret: SecretStr | None = None) -> SubmitResult:
    """Classify a complete HTTP response to a submit POST (the body must be read)."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            accepted = SubmitResponse.model_validate(load_json(response.content))
        except (MalformedBody, ValidationError):
            return _ambiguous(
                f"HTTP {status} without a readable task_id", status=status, reason=None, secret=secret
            )
        problem = task_id_problem(accepted.task_id, secret)
        if problem is not None:
            return _ambiguous(
                f"HTTP {status} with {problem}, refused as implausible: {shown(accepted.task_id, secret)}",
                status=status, reason="IMPLAUSIBLE_TASK_ID", secret=secret,
            )
        return SubmitResult(
            outcome=SubmitOutcome.ACCEPTED, task_id=accepted.task_id, http_status=status
        )

    envelope = read_envelope(response, secret)
    reason = envelope.reason if envelope else None
    detail = error_message(response, envelope, secret)
    described = f"HTTP {status}" + (f" {reason}" if reason else "") + (f": {detail}" if detail else "")

    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return SubmitResult(
            outcome=SubmitOutcome.REFUSED,
            http_status=status,
            reason=reason or "RATE_LIMIT_EXCEEDED",
            message=_short(f"{described} (rate limited; nothing was created)", secret),
            retry_after=retry_after,
            retryable=True,
        )
    if status in (401, 402, 403) or (400 <= status < 500 and reason in FATAL_REASONS):
        if is_balance(status, reason):
            hint = "top up the Novita account balance"
        else:
            hint = "the API key is missing, wrong or not allowed; check NOVITA_API_KEY"
        return SubmitResult(
            outcome=SubmitOutcome.REFUSED,
            http_status=status,
            reason=reason,
            message=_short(f"{described} ({hint}; stopping the run)", secret),
            fatal=True,
        )
    if (status == 404 and (envelope is None or reason == API_NOT_FOUND)) or (status == 405 and envelope is None):
        # 405 without the envelope: a web server at the base URL that takes no POST there (a static site)
        url = _request_url(response)
        return SubmitResult(
            outcome=SubmitOutcome.REFUSED,
            http_status=status,
            reason=reason,
            message=_short(
                f"HTTP {status} {reason or 'page'}: there is no API at {url}; the base URL is wrong — fix --base-url"
                " or NOVITA_BASE_URL (the API lives at https://api.novita.ai) — or the provider no longer serves"
                " this model (nothing was created)",
                secret,
            ),
            fatal=True,
            unknown_route=True,
        )
    if 400 <= status < 500:
        return SubmitResult(
            outcome=SubmitOutcome.REFUSED,
            http_status=status,
            reason=reason,
            message=_short(f"{described} (refused; sending the same body again will not help)", secret),
        )
    if 500 <= status < 600 and reason == CREATE_TASK_FAILED:
        return SubmitResult(
            outcome=SubmitOutcome.REFUSED,
            http_status=status,
            reason=reason,
            message=_short(f"{described} (the provider says no task was created)", secret),
            retryable=True,
        )
    if 500 <= status < 600:
        what = described if envelope else f"HTTP {status} gateway page without the provider's error envelope"
        return _ambiguous(what, status=status, reason=reason, secret=secret)
    return _ambiguous(f"unexpected {described}", status=status, reason=reason, secret=secret)


def is_balance(status: int | None, reason: str | None) -> bool:
    """Whether a refusal is the account's balance: ``BILLING_BALANCE_NOT_ENOUGH``, or any 402 Payment Required (a
    reason the docs do not list would otherwise fail every job of the batch, one POST each, as refused for good)."""
    return reason == "BILLING_BALANCE_NOT_ENOUGH" or status == 402


def classify_exception(exc: Exception, *, secret: SecretStr | None = None) -> SubmitResult:
    """Classify an exception raised while sending a submit POST or reading its response."""
    name = type(exc).__name__
    text = str(exc)
    detail = f"{name}: {text}" if text else name
    if isinstance(exc, NotSent):
        return SubmitResult(outcome=SubmitOutcome.REFUSED, reason=NOT_SENT,
                            message=_short(f"not sent: {text} (nothing was created)", secret))
    if isinstance(exc, _NOT_SENT):
        return SubmitResult(
            outcome=SubmitOutcome.REFUSED,
            reason=NO_DESCRIPTOR if _errno_of(exc) == errno.EMFILE else name,
            message=_short(f"{connect_cause(exc) or detail} ({NOT_SENT_NOTE})", secret),
            retryable=True,
        )
    return _ambiguous(detail, status=None, reason=name, secret=secret)


def _errno_of(exc: BaseException) -> int | None:
    """The errno of the OS error under ``exc`` (httpx wraps it), if any."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


def taken(accepted: SubmitResult, holder: str) -> SubmitResult:
    """An accepted answer naming a task that a job (``holder``: another, or this one's earlier task) already holds is
    ambiguous, not this POST's task: its own task may exist, billed, under an id that never arrived, and recording
    the known task here would store its video again under this job's name (or bring a rejected sample back). A
    middlebox replaying an earlier answer, or the provider's own mistake: the answer cannot tell which (the caller
    reads the holder from its ledger)."""
    return SubmitResult(
        outcome=SubmitOutcome.AMBIGUOUS, http_status=accepted.http_status, reason=TASK_TAKEN,
        message=(f"HTTP {accepted.http_status} named task {accepted.task_id}, which job {holder[:12]} already holds;"
                 f" this job's own {AMBIGUOUS_NOTE.removeprefix('the ')}"),
    )
