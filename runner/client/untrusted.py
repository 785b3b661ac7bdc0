"""Reading what the provider sent, as if it were hostile: the adapter boundary.

Everything the provider says passes through here before it becomes one of our
types, so nothing downstream (engine, ledger, exports, pages, logs) has to
distrust it again:

* :func:`load_json` parses a body safely: invalid UTF-8, bad JSON, nesting
  deeper than :data:`MAX_DEPTH` (which would raise ``RecursionError`` in the
  parser or later in ``json.dumps``), integers too long to convert and a key
  the runner reads (:data:`READ_KEYS`: ``task_id``, ``status``…) given twice
  with different values (which one the provider meant cannot be known: a
  ``task_id`` said twice must not be guessed; any other key keeps its last value) all become
  :class:`MalformedBody` — "we cannot read this answer", never a crash;
* :func:`scrub` replaces the API key in every string of a parsed body (keys
  and values), so a failure reason or ``debug_info`` that quotes the key is
  stored and shown as ``***``, and a lone surrogate (a ``\\ud800`` escape) by
  U+FFFD, so that every string it gives can be stored;
* :func:`task_id_problem` says why a submit's ``task_id`` is not a plausible
  id (too long, whitespace, control or non-printable characters, the key
  itself): such an answer is *ambiguous* (a task may exist), and the raw value
  is kept, shortened and escaped, by :func:`shown`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from runner.client.connection import redact
from runner.text import storable  # sqlite3 raised UnicodeEncodeError at the ledger write of a failed task's reason

__all__ = ["MAX_DEPTH", "READ_KEYS", "TASK_ID_MAX", "MalformedBody", "load_json", "scrub", "shown", "task_id_problem"]

MAX_DEPTH = 32  # the documented bodies nest 3 levels deep
TASK_ID_MAX = 256  # real ids are UUIDs (36 characters)
SHOWN_MAX = 80


class MalformedBody(ValueError):
    """A provider body that cannot be read as the JSON it should be."""


#: The keys of an answer the runner reads (a submit's, a task result's, an error envelope's): one of them given twice
#: with different values makes the answer unreadable.
READ_KEYS = frozenset({"task_id", "task", "status", "reason", "videos", "video_url", "video_url_ttl", "code",
                       "message", "extra", "debug_info"})


def load_json(content: bytes) -> Any:
    """The JSON value in ``content``; MalformedBody (a ValueError) when it cannot be read safely."""
    try:
        data = json.loads(content, object_pairs_hook=_once)
    except MalformedBody:
        raise
    except RecursionError:
        raise MalformedBody(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError, over-long integers
        raise MalformedBody(f"not JSON ({type(exc).__name__})") from None
    if _too_deep(data):
        raise MalformedBody(f"JSON nested deeper than {MAX_DEPTH} levels")
    return data


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of ``pairs``; MalformedBody when a key of :data:`READ_KEYS` comes twice with different values (the
    same value twice is harmless; any other key keeps its last value, as ``json.loads`` alone does)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        for name, value in pairs:
            if name in READ_KEYS and data[name] != value:
                raise MalformedBody(f"the key {shown(name)} twice, with different values")
    return data


def _too_deep(data: Any) -> bool:
    level: list[Any] = [data]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for value in level
            if isinstance(value, (dict, list))
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def scrub(data: Any, secret: SecretStr | None) -> Any:
    """``data`` (parsed JSON) with the secret replaced by ``***`` in every string, keys included, and every lone
    surrogate (a ``\\ud800`` escape: half of a UTF-16 pair, which UTF-8 cannot write) by U+FFFD."""
    if isinstance(data, str):
        return redact(storable(data), secret)
    if isinstance(data, dict):
        return {redact(storable(str(k)), secret): scrub(v, secret) for k, v in data.items()}
    if isinstance(data, list):
        return [scrub(item, secret) for item in data]
    return data




def task_id_problem(task_id: str, secret: SecretStr | None = None) -> str | None:
    """Why ``task_id`` is not a plausible task id, or None when it is."""
    if not task_id:
        return "an empty task_id"
    if len(task_id) > TASK_ID_MAX:
        return f"a task_id of {len(task_id):,} characters (more than {TASK_ID_MAX})"
    if any(ch.isspace() for ch in task_id):
        return "a task_id with whitespace"
    if not task_id.isprintable():
        return "a task_id with control or non-printable characters"
    if secret is not None and secret.get_secret_value() and secret.get_secret_value() in task_id:
        return "a task_id quoting the API key"
    return None


def shown(value: str, secret: SecretStr | None = None) -> str:
    """``value`` escaped (repr) and shortened, for a message the operator reads; key scrubbed."""
    clean = redact(value, secret)
    text = repr(clean[:SHOWN_MAX])
    return text if len(clean) <= SHOWN_MAX else f"{text}… ({len(value):,} characters)"
