"""Twins: today's key of a job an older runner planned under another key derivation — only when that is exact.

Two changes moved keys (the eras of ``tests/integration/test_job_keys_eras.py``):

* before c1397a3 (2026-12-03) text was hashed as typed: a prompt or a ``salt`` in NFD (macOS, some editors)
  keyed its jobs otherwise than its NFC spelling does now (:func:`pre_nfc_twin`);
* until ``data:`` URIs were refused in manifests, one typed there was hashed as its whole string; the same
  image named as a file now is hashed as ``{"sha256": …}`` of its bytes (:func:`data_uri_twin`).

A twin is proof, never a guess: the earlier job's key must be exactly the hash, under the old derivation, of the
request the ledger stored for it with the manifest's salt, and the twin is that request under today's. A job of
another salt, model, repeat or body finds no twin. The ledgers' planning swaps a twin — planned just now, never
sent — for the earlier job (``_keep_earlier_jobs`` in ``sqlite/planning.py`` and ``postgres/planning.py``).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from runner import endpoints
from runner.jobs import KEY_HEX_CHARS, canonical_json, job_key, nfc

if TYPE_CHECKING:
    from runner.ledger.records import JobRecord

__all__ = ["data_uri_twin", "earlier_twins", "pre_nfc_twin", "twin_key"]


def twin_key(key: str, model: str, request_json: str, repeat: int, salt: str | None) -> str | None:
    """Today's key of the job stored as (``key``, ``model``, ``request_json``, ``repeat``); None unless exact."""
    return pre_nfc_twin(key, model, request_json, repeat, salt) or data_uri_twin(key, model, request_json, repeat, salt)


def earlier_twins(jobs: Iterable[JobRecord], salt: str | None) -> dict[str, JobRecord]:
    """Today's key → the job of ``jobs`` (a manifest's, as its ledger holds them) planned under an older derivation
    whose exact twin that is: the job a run keeps in the twin's place (``_keep_earlier_jobs``), for a reader that
    never plans (``runner plan`` prices and counts it as the run would). Only jobs whose stored body could have
    one are hashed: non-ASCII text or a ``data:`` URI, every job when the salt is not ASCII (the planning's filter)."""
    every = salt is not None and not salt.isascii()
    found: dict[str, JobRecord] = {}
    for job in jobs:
        text = json.dumps(job.request, ensure_ascii=False)
        if not (every or not text.isascii() or '"data:' in text.lower()):
            continue
        if (twin := twin_key(job.key, job.model, text, job.repeat, salt)) is not None:
            found.setdefault(twin, job)
    return found


def pre_nfc_twin(key: str, model: str, request_json: str, repeat: int, salt: str | None) -> str | None:
    """The key a job planned before text was put in NFC (commit c1397a3) has now; None unless that is exact.

    That code hashed the stored body and the salt as typed: ``key`` is such a job's only when it equals that hash
    of the row's own ``request_json`` with ``salt`` — as the manifest says it now, or in NFD, the spelling that
    differs from today's (NFC) key. Its twin is the NFC of both. None when ``key`` is not that hash (another salt,
    a job planned by today's code) or when the twin would be ``key`` itself (nothing was normalised).
    """
    body = json.loads(request_json)
    twin = job_key(model, nfc(body), repeat, salt)
    if twin == key:
        return None
    for typed in dict.fromkeys((salt or "", unicodedata.normalize("NFD", salt or ""))):
        material = canonical_json({"model": model, "body": body, "repeat": repeat, "salt": typed})
        if hashlib.sha256(material.encode("utf-8")).hexdigest()[:KEY_HEX_CHARS] == key:
            return twin
    return None


def data_uri_twin(key: str, model: str, request_json: str, repeat: int, salt: str | None) -> str | None:
    """The key of a job planned from a ``data:`` URI typed in its manifest, once that image is named as a file.

    Exact: ``key`` must be today's hash of the stored request (its identity body, the URI a string in it) with
    ``salt``; the twin is that body with each ``data:`` URI of a media field replaced by ``{"sha256": …}`` of the
    bytes it decodes to — what a file of those bytes is keyed by. None when nothing is to replace or it is not so.
    """
    if "data:" not in request_json.lower():
        return None
    try:
        spec = endpoints.get(model)
    except endpoints.UnknownEndpoint:  # a model this runner no longer has: nothing to match
        return None
    body: dict[str, Any] = spec.identity_body(json.loads(request_json))
    twin = dict(body)
    for name in spec.media_fields:
        value = twin.get(name)
        if isinstance(value, str) and value[:5].lower() == "data:":
            from runner.endpoints.inputs import data_uri_bytes  # pydantic: only for such a job

            decoded = data_uri_bytes(value)
            if decoded is None:
                return None
            twin[name] = {"sha256": hashlib.sha256(decoded[1]).hexdigest()}
    if twin == body or job_key(model, body, repeat, salt) != key:
        return None
    return job_key(model, twin, repeat, salt)
