"""One JSON object per line, one line to every reader: :func:`json_line`.

JSON text is written as UTF-8 (``ensure_ascii=False``: a prompt in Japanese stays readable). JSON escapes the
characters below U+0020, so a record holds no ``\\n``; but U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR and
U+0085 NEXT LINE are line breaks to Python's ``str.splitlines()`` (and U+2028/9 to JavaScript before ES2019), and
JSON lets them through raw. A prompt pasted from a web page or a word processor carries them: its record was cut
in two by a builder's ``text.splitlines()``, and neither half parsed. They are written ``\\u``-escaped: the same
JSON value, one line to every reader. They can only be inside a JSON string, where an escape is always allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["json_line"]

_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as one line of JSON (no newline at its end), UTF-8 text as it is, line breaks of any reader's
    escaped."""
    text = json.dumps(value, ensure_ascii=False, default=default)
    return text if text.isascii() else text.translate(_BREAKS)
