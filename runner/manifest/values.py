"""Small shared helpers of the manifest package: values, names, diagnostics.

A *value* of the manifest language (an axis value, a row cell, an include
value) is a scalar: ``str``, ``int``, ``float`` or ``bool``. YAML/JSON
``null`` and an empty CSV cell become ``""``, which a request field reads as
"not set here" (the manifest's ``defaults`` or the model's default apply).

Values are matched (by ``exclude`` and ``include``) through their *text*
(:func:`norm`), so that ``10`` in YAML matches ``"10"`` read from a CSV file.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "RESERVED_VARS",
    "Item",
    "check_scalar",
    "control_character",
    "describe_job",
    "did_you_mean",
    "is_variable_name",
    "lone_surrogate",
    "non_finite",
    "norm",
    "shown",
]

#: Template variables every job has; no axis, column or include may use them.
RESERVED_VARS = frozenset({"repeat", "key"})

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Control characters a value may not hold: C0 apart from tab, newline and carriage return, and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

#: One value of an axis: ``(values, norms, line)`` — a 1-tuple for a plain
#: axis, one entry per column for a ``rows`` axis; ``line`` is the line of
#: the value in the file it came from (the manifest or a data file).
Item = tuple[tuple[Any, ...], tuple[str, ...], int | None]


def is_variable_name(name: str) -> bool:
    """True when ``name`` can be used as ``{name}`` in a template."""
    return bool(_NAME.match(name))


def norm(value: Any) -> str:
    """The text a value is compared by: ``10``, ``10.0`` and ``"10"`` are equal."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def lone_surrogate(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8 — to a file name, the ledger, the terminal — or ``None``.

    Only a lone surrogate (``\\ud800``: half of a UTF-16 pair, a JSON or YAML ``\\u`` escape without its
    other half) is text Python holds and UTF-8 cannot write; it is no character.
    """
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"{shown(text)} holds a lone surrogate {text[exc.start]!r} (half of a \\u escaped pair, not a"
                " character), which cannot be written as UTF-8 to a file name, the ledger or the terminal; write the"
                " character itself, or both halves of its pair")
    return None


def control_character(text: str) -> str | None:
    """Why ``text`` cannot be a prompt, a value or a name — it holds a control character other than a tab or a line
    break (NUL, ESC, DEL…: a provider may cut a prompt at a NUL, a terminal obeys an ESC) — or ``None``."""
    if text.isprintable():  # the fast path; a tab, a newline, a no-break space… take the search
        return None
    control = _CONTROL.search(text)
    if control is None:
        return None
    return (f"{shown(text)} holds the control character {control.group()!r}, which no prompt or name means (a file"
            " saved as UTF-16, or binary bytes, reads this way); remove it, or save the file as UTF-8")


def non_finite(value: float) -> str:
    """Why the number ``value`` (NaN or ±Infinity: YAML ``.nan``/``.inf``, JSONL ``NaN``) cannot be a value."""
    text = norm(value)
    return (f"{text} is not a number JSON can write (every export, --json output and report would be invalid JSON"
            f" there); quote it ('{text}') if you mean the text: the same prompt, output name and job key")


def check_scalar(value: Any) -> Any:
    """``value`` if it is a scalar (``None`` becomes ``""``); ``TypeError`` if not, ``ValueError`` for a text that
    is not text (:func:`lone_surrogate`) or holds a control character (NUL, ESC…; tab and newlines are text), and
    for a number JSON cannot write (NaN, ±Infinity: :func:`non_finite`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        why = lone_surrogate(value) or control_character(value)
        if why is not None:
            raise ValueError(why)
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(non_finite(value))
    if isinstance(value, (int, float, bool)):
        return value
    kind = "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__
    raise TypeError(f"a value must be text, a number or true/false, not {kind}")


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` or ``""`` when nothing is close."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _short(value: Any, limit: int = 40) -> str:
    text = norm(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if text == "" or any(c in text for c in ",{}:") or text != text.strip():
        return repr(text)
    return text


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters (a 5 MB prompt is not quoted whole)."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def describe_job(variables: Mapping[str, Any], repeat: int | None) -> str:
    """A job as its variables, e.g. ``{city: Tokyo, time: night, repeat: 1}``."""
    parts = [f"{name}: {_short(value)}" for name, value in variables.items()]
    if repeat is not None:
        parts.append(f"repeat: {repeat}")
    return "{" + ", ".join(parts) + "}"
