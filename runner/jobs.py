"""Jobs: their identity and their states.

A job's key hashes what is paid for — the endpoint, the canonical JSON of the
endpoint's identity body (defaults filled, keys sorted; never the wire body,
which may carry transport-only fields: see :mod:`runner.endpoints`), the
repeat index and an optional salt — so it does not change when axis values are
reordered, the manifest is renamed or unrelated lines are edited, and two
manifests asking for the same video share one job.

Text is hashed and sent in Unicode NFC (:func:`nfc`): the same prompt typed
with precomposed or combining accents (an editor, a shell or macOS may write
either) is the same job and the same wire body.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KEY_HEX_CHARS", "JobSpec", "JobState", "canonical_json", "job_key", "job_key_of_json", "nfc"]

KEY_HEX_CHARS = 20  # 80 bits: collisions stay negligible far beyond 10^9 jobs


class JobState(enum.StrEnum):
    """The states of docs/architecture.md; the ledger is their single source of truth."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    IN_DOUBT = "in_doubt"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DONE = "done"
    FAILED = "failed"
    LOST = "lost"

    @property
    def outstanding(self) -> bool:
        """Counts against the concurrency limit: a task may exist at the provider."""
        return self in (JobState.SUBMITTING, JobState.RUNNING)

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.LOST)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_encode_str = _CANONICAL.encode  # a str alone: its JSON string, as inside any canonical document


def canonical_json(value: Any) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8 kept as is."""
    # Same output as json.dumps(value, sort_keys=True, separators=(",", ":"),
    # ensure_ascii=False); one shared encoder saves its set-up on every call
    # (a million-job plan hashes a million bodies).
    return _CANONICAL.encode(value)


def _plain(value: Any) -> bool:
    """True when :func:`nfc` leaves ``value`` as it is without looking inside (the common case)."""
    kind = type(value)
    if kind is str:
        return value.isascii()  # type: ignore[no-any-return]
    if kind is int or kind is float or kind is bool or value is None:
        return True
    if isinstance(value, str):
        return value.isascii()
    return not isinstance(value, (dict, list))


def nfc(value: Any) -> Any:
    """``value`` with every string in it (dict keys included) in Unicode NFC; other values as they are.

    Returns ``value`` itself when it is all ASCII, so the common case costs no copy.
    """
    if isinstance(value, str):
        return value if value.isascii() else unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        for key, item in value.items():
            # The common case inline: str keys and str or int values, all ASCII.
            if type(key) is str and key.isascii() and (
                item.isascii() if type(item) is str else type(item) is int or _plain(item)
            ):
                continue
            if not (_plain(key) and _plain(item)):
                return {nfc(k): nfc(v) for k, v in value.items()}
        return value
    if isinstance(value, list):
        return value if all(_plain(item) for item in value) else [nfc(item) for item in value]
    return value


def job_key(model: str, body: dict[str, Any], repeat: int, salt: str | None = None) -> str:
    """The job's identity: a hash of endpoint + canonical identity body + repeat (+ salt).

    ``body`` must already be the endpoint's NFC identity body (see :func:`nfc` and
    :meth:`runner.endpoints.EndpointSpec.identity_body`); the salt is normalised here.
    """
    if type(repeat) is not int or type(model) is not str:  # as it always was, for any odd caller
        material = canonical_json({"model": model, "body": body, "repeat": repeat, "salt": nfc(salt or "")})
        return hashlib.sha256(material.encode("utf-8")).hexdigest()[:KEY_HEX_CHARS]
    return job_key_of_json(model, canonical_json(body), repeat, salt)


def job_key_of_json(model: str, body_json: str, repeat: int, salt: str | None = None) -> str:
    """:func:`job_key` from ``canonical_json(body)``, computed once by the caller (it is stored too).

    The key's material is ``canonical_json({"model": …, "body": …, "repeat": …, "salt": …})``: its
    keys sorted, the body's JSON sits first, as it is, and the rest follows.
    """
    material = '{"body":' + body_json + _key_tail(model, repeat, salt)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:KEY_HEX_CHARS]


@functools.lru_cache(maxsize=1024)
def _key_tail(model: str, repeat: int, salt: str | None) -> str:
    """What follows the body in a key's material (the same for every job of one model, repeat and salt)."""
    return f',"model":{_encode_str(model)},"repeat":{repeat!r},"salt":{_encode_str(nfc(salt or ""))}}}'


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One planned job, as the manifest expands it.

    ``request`` is the stored request (the endpoint's request model with its
    defaults filled; the wire body is built from it at submit time); ``vars`` the template
    variables that produced it; ``output`` the file name under the manifest's
    outputs folder (already sanitised); ``estimated_usd`` the price estimate.
    """

    key: str
    model: str
    request: dict[str, Any]
    vars: dict[str, Any]
    repeat: int
    output: str
    estimated_usd: float = 0.0
    line: int | None = field(default=None, compare=False)
    #: ``canonical_json(request)`` when the expansion already made it (what the ledger stores); None: not yet.
    request_json: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        *,
        model: str,
        request: dict[str, Any],
        vars: dict[str, Any],
        repeat: int,
        output: str,
        salt: str | None = None,
        estimated_usd: float = 0.0,
        line: int | None = None,
    ) -> JobSpec:
        # ``request`` is hashed as it is: its own identity body (true of every endpoint whose
        # wire body adds nothing to what is paid for, Kling v3.0 Pro T2V included).
        request, vars = nfc(request), nfc(vars)
        return cls(
            key=job_key(model, request, repeat, salt),
            model=model,
            request=request,
            vars=vars,
            repeat=repeat,
            output=output,
            estimated_usd=estimated_usd,
            line=line,
        )


def _planned_maker() -> Any:
    setters = [getattr(JobSpec, name).__set__ for name in
               ("key", "model", "request", "vars", "repeat", "output", "estimated_usd", "line", "request_json")]
    key_, model_, request_, vars_, repeat_, output_, usd_, line_, json_ = setters
    new = object.__new__

    def planned(key: str, model: str, request: dict[str, Any], vars: dict[str, Any], repeat: int, output: str,
                estimated_usd: float, request_json: str | None) -> JobSpec:
        """``JobSpec(...)`` without the frozen dataclass's per-field ``object.__setattr__`` (a million-job plan
        builds a million of them): the same object, fields set through their slots."""
        job: JobSpec = new(JobSpec)
        key_(job, key)
        model_(job, model)
        request_(job, request)
        vars_(job, vars)
        repeat_(job, repeat)
        output_(job, output)
        usd_(job, estimated_usd)
        line_(job, None)
        json_(job, request_json)
        return job

    return planned


planned_job = _planned_maker()
